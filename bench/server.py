"""A real coopflow server for the client and API benchmarks: a copy of the shipped policy, people
with accounts and tokens, `coopflow run` (daemon + API) or `coopflow serve` in a subprocess.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from common import COOPFLOW, copy_shipped_policy

PASSWORD = "mật khẩu đủ dài 2027"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COOPFLOW_") and k != "XDG_CONFIG_HOME"}
    env.update(extra)
    return env


def coopflow(config: Path, *args: str, input: str | None = None) -> str:
    done = subprocess.run([COOPFLOW, *args, "-c", str(config)], input=input, text=True, capture_output=True,
                          env=clean_env(), cwd=config.parent, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"coopflow {' '.join(args)}: {done.stderr}")
    return done.stdout


@contextmanager
def running(root: Path, people: list[str], command: str = "run", store_url: str | None = None):
    """Yields (url, config, {person: token}) while `coopflow COMMAND` serves the copy; stopped with SIGTERM after."""
    import httpx

    config = copy_shipped_policy(root, store_url)
    port = free_port()
    with open(config, "a", encoding="utf-8") as out:
        out.write(f"\nhttp:\n  port: {port}\n")
    coopflow(config, "init")
    tokens = {}
    for person in people:
        coopflow(config, "user", "add", person, "--password-stdin", input=PASSWORD + "\n")
        tokens[person] = coopflow(config, "token", "issue", person).strip()
    proc = subprocess.Popen([COOPFLOW, command, "-c", str(config)], env=clean_env(COOPFLOW_LEASE_TTL="3"), cwd=root,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(root / "server.log", "wb"))
    url = f"http://127.0.0.1:{port}"
    ready = "/readyz" if command == "run" else "/healthz"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url + ready, timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("server did not start: " + (root / "server.log").read_text(errors="replace")[-2000:])
        time.sleep(0.2)
    try:
        yield url, config, tokens
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


if __name__ == "__main__":
    sys.exit("a helper of bench/cli.py and bench/api.py")
