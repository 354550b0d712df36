"""Crash-test worker: submit a fixed set of keyed events, then apply them; meant to be SIGKILLed.

Usage:
  python tests/crash_worker.py CONFIG EVENTS           one worker run, in this process
  python tests/crash_worker.py --serve CONFIG EVENTS   a launcher: for each `run` line on stdin,
                                                       fork a fresh worker process, wait for it
                                                       and print `killed SIGNAL` or `exit CODE`

A worker run submits (idempotently, by key) the start of one `pingpong` instance (key `start`)
and EVENTS fire events (keys `ev-0` .. `ev-{EVENTS-1}`) that bounce the instance between `ping`
and `pong`, in chunks of one transaction each (printing `submitted K` after each chunk commits);
then it prints `draining`, applies everything with Runtime.settle() and prints `done`. Run again after a kill, it re-submits the same keys (nothing is
queued twice) and goes on applying what is still pending.

The launcher exists only to make restarts cheap: it imports the engine once, and each worker is
a forked child that opens the policy and the store afresh, so that twenty-odd SIGKILLs fit in a
few seconds. Nothing is open in the launcher when it forks.
"""

from __future__ import annotations

import os
import sys
import traceback

from loguru import logger

from engine.execution.runtime import open_runtime
from engine.store import inbox

CHUNK = 50
INSTANCE = "pingpong-crash"


def run(config: str, events: int) -> None:
    """One worker run: submit every key, then apply all pending events."""
    runtime = open_runtime(config, create=True)
    with runtime.store.transaction() as conn:
        instance = inbox.submit(conn, inbox.START, instance=INSTANCE, workflow="pingpong",
                                actor="a.leader", values={"label": "crash"}, key="start").instance
    for first in range(0, events, CHUNK):
        with runtime.store.transaction() as conn:
            for i in range(first, min(first + CHUNK, events)):
                flip = i % 2 == 0
                inbox.submit(conn, inbox.FIRE, instance=instance, trigger="flip" if flip else "flop",
                             actor="a.leader" if flip else "b.leader", values={"n": i}, key=f"ev-{i}")
        print(f"submitted {min(first + CHUNK, events)}", flush=True)
    print("draining", flush=True)
    runtime.executor.drain()  # one event per transaction: every commit is a point to be killed at
    print("done", flush=True)


def serve(config: str, events: int) -> None:
    """Fork one worker per `run` command; report how each ended."""
    print("ready", flush=True)
    for command in sys.stdin:
        if command.strip() != "run":
            break
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                print(f"pid {os.getpid()}", flush=True)
                run(config, events)
            except BaseException:  # report it to the test, which shows stderr on failure
                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        # A killed worker may have written half a line: start the report on a line of its own.
        if os.WIFSIGNALED(status):
            print(f"\nkilled {os.WTERMSIG(status)}", flush=True)
        else:
            print(f"\nexit {os.WEXITSTATUS(status)}", flush=True)


if __name__ == "__main__":
    logger.remove()  # per-event log lines would only slow the worker down
    if sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        run(sys.argv[1], int(sys.argv[2]))
