"""What translating the CLI's help costs at start-up: this tree against another checkout of coopflow.

Runs, in interleaved rounds (each round every command once from each tree, before first in even
rounds and after first in odd ones, so the shared machine's load hits them alike), `coopflow --version` (the CLI's floor), `coopflow status --help`
and `coopflow --help` (every sub-command imported and listed) in Vietnamese, from BEFORE (a
checkout, e.g. `git archive main | tar -x -C /tmp/before`) and from this tree, both compiled to
bytecode first. The child's CPU (wait4) and wall per run: median (min–max), in ms.

    .venv/bin/python bench/cli_help.py /tmp/before [--rounds 15]
"""

from __future__ import annotations

import argparse
import compileall
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import environment, median  # noqa: E402

HERE = Path(__file__).resolve().parent.parent
COMMANDS = {"coopflow --version": ["--version"], "coopflow status --help": ["status", "--help"],
            "coopflow --help": ["--help"]}


def timed(tree: Path, args: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of `python -m engine ARGS` with `tree` first on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COOPFLOW_", "LC_", "LANG"))}
    env.update(PYTHONPATH=str(tree), LC_MESSAGES="vi_VN.UTF-8")
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "engine", *args], env=env, cwd=tree,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    assert os.waitstatus_to_exitcode(status) == 0, (tree, args)
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    print(environment(), f"load average {os.getloadavg()[0]:.1f}")
    trees = {"before": args.before.resolve(), "after": HERE}
    for tree in trees.values():
        compileall.compile_dir(tree / "engine", quiet=1)
    runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for round_ in range(args.rounds):
        for label, argv in COMMANDS.items():
            order = list(trees.items()) if round_ % 2 == 0 else list(trees.items())[::-1]  # ABBA: no side always second
            for which, tree in order:
                runs.setdefault((label, which), []).append(timed(tree, argv))
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    print("| command | before CPU ms | after CPU ms | before wall ms | after wall ms |")
    print("| --- | --- | --- | --- | --- |")

    def cell(values: list[float]) -> str:
        ms = sorted(v * 1000 for v in values)
        return f"{median(ms):.0f} ({ms[0]:.0f}–{ms[-1]:.0f})"

    for label in COMMANDS:
        before, after = runs[label, "before"], runs[label, "after"]
        print(f"| `{label}` | {cell([c for _, c in before])} | {cell([c for _, c in after])} | "
              f"{cell([w for w, _ in before])} | {cell([w for w, _ in after])} |")


if __name__ == "__main__":
    main()
