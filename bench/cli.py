"""The client CLI's start-up: `coopflow status INSTANCE` against a server, beside `python -c pass`.

Aim (issue 11): ≤ 150 ms wall for `coopflow status` against a server. Measured in rounds, each
round running every command once in turn (so the shared machine's load hits them alike):

* `python -c pass` — the interpreter alone;
* `import click` — the interpreter and click, the CLI's floor;
* `http.client GET` — a Python script doing the same request with the standard library's http.client
  (why the client does not use it either: it loads `email` and `ssl`);
* `httpx GET` — the same with httpx (why the client does not use it);
* `coopflow status ID` (remote) — logged in with `coopflow login` (saved token, time zone);
* `coopflow status` (remote overview) — the same with rich tables drawn;
* `coopflow status ID -c CONFIG` (local) — the administrator's direct-store mode, for comparison.

Wall time and the child's CPU (user + sys, from wait4) per run: median (min–max).
`--imports` also prints the slowest imports of the remote command (python -X importtime).

coopflow's own modules are compiled to bytecode first (`compileall`), as installing a package
does: with PYTHONDONTWRITEBYTECODE set (it is on the project machine) an editable install would
otherwise compile every module of the command from source on every run.

    .venv/bin/python bench/cli.py [--rounds 15] [--imports]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import COOPFLOW, compile_engine, environment, median  # noqa: E402
from server import PASSWORD, clean_env, running  # noqa: E402


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run; the run must succeed."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.read().decode()[:500]}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--imports", action="store_true")
    args = parser.parse_args()
    print(environment())
    compile_engine()
    with tempfile.TemporaryDirectory(prefix="bench_cli_") as tmp:
        root = Path(tmp)
        with running(root / "server", ["nguyen_van_a"], command="serve") as (url, config, _tokens):
            desk = root / "desk"
            desk.mkdir()
            env = clean_env(XDG_CONFIG_HOME=str(desk / "config"))
            subprocess.run([COOPFLOW, "login", "--server", url, "--user", "nguyen_van_a", "--password-stdin"],
                           input=PASSWORD + "\n", text=True, env=env, cwd=desk, check=True, capture_output=True)
            started = subprocess.run([COOPFLOW, "start", "information_exchange", "--set", "requester=dic",
                                      "--set", "recipient=police", "--set", "subject=bench"],
                                     text=True, env=env, cwd=desk, check=True, capture_output=True)
            ident = started.stdout.splitlines()[0]
            import json

            token = json.loads((desk / "config" / "coopflow" / "credentials").read_text())["token"]
            raw = ("import httpx, sys; r = httpx.get(sys.argv[1], headers={'Authorization': 'Bearer ' + sys.argv[2]}); "
                   "r.raise_for_status(); r.json()")
            stdlib = ("import http.client, json, sys; c = http.client.HTTPConnection(sys.argv[1]); "
                      "c.request('GET', sys.argv[2], headers={'Authorization': 'Bearer ' + sys.argv[3]}); "
                      "r = c.getresponse(); assert r.status == 200; json.loads(r.read())")
            commands = {
                "python -c pass": [sys.executable, "-c", "pass"],
                "import click": [sys.executable, "-c", "import click"],
                "http.client GET (raw stdlib)": [sys.executable, "-c", stdlib, url.removeprefix("http://"),
                                                 f"/api/v1/instances/{ident}", token],
                "httpx GET (raw library)": [sys.executable, "-c", raw, f"{url}/api/v1/instances/{ident}", token],
                "coopflow status ID (remote)": [COOPFLOW, "status", ident],
                "coopflow status (remote overview)": [COOPFLOW, "status"],
                "coopflow status ID -c (local)": [COOPFLOW, "status", ident, "-c", str(config)],
            }
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
            for argv in commands.values():  # warm the page cache once
                timed(argv, env, desk)
            for _ in range(args.rounds):
                for name, argv in commands.items():
                    results[name].append(timed(argv, env, desk))
            print(f"\n{args.rounds} rounds; wall and CPU per run, median (min–max), ms")
            print("| command | wall | CPU |\n| --- | --- | --- |")
            for name, runs in results.items():
                walls, cpus = [w * 1000 for w, _ in runs], [c * 1000 for _, c in runs]
                print(f"| {name} | {median(walls):.0f} ({min(walls):.0f}–{max(walls):.0f}) "
                      f"| {median(cpus):.0f} ({min(cpus):.0f}–{max(cpus):.0f}) |")
            remote = median([w for w, _ in results["coopflow status ID (remote)"]]) * 1000
            print(f"\naim ≤ 150 ms wall for the remote status: {'met' if remote <= 150 else 'MISSED'} ({remote:.0f} ms)")
            if args.imports or remote > 150:
                done = subprocess.run([COOPFLOW, "status", ident], env={**env, "PYTHONPROFILEIMPORTTIME": "1"}, cwd=desk,
                                      capture_output=True, text=True)
                rows = [line.split("|") for line in done.stderr.splitlines() if line.startswith("import time:")]
                top = sorted(((int(r[1]), r[2].strip()) for r in rows if r[1].strip().isdigit()), reverse=True)[:12]
                print("\nslowest imports of the remote status (cumulative µs):")
                for micros, name in top:
                    print(f"  {micros:>8}  {name}")


if __name__ == "__main__":
    main()
