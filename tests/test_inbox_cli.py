"""`coopflow inbox` and `coopflow inbox cancel`, as an operator types them (subprocess, both stores)."""

from __future__ import annotations

import json
from pathlib import Path

from test_daemon import base_env, run_cli
from test_intake import FIRE, START, _start, policy  # noqa: F401  (policy is a fixture)

from engine.store import history, inbox
from engine.store.database import SqlStore


def test_list_and_cancel_a_pending_event(policy: Path, store_url: str) -> None:
    env = base_env(store_url)
    instance = _start(policy, env)
    store = SqlStore(store_url)
    try:
        with store.transaction() as conn:  # as the CLI queues it while a daemon runs: pending
            inbox.submit(conn, inbox.FIRE, instance=instance, trigger="answer", actor="b.focal_point")
        refused = run_cli(policy, env, "fire", instance, "answer", "--as", "a.focal_point")  # applies the pending one first
        assert refused.returncode == 1
        with store.transaction() as conn:
            queued = inbox.submit(conn, inbox.FIRE, instance=instance, trigger="expire", actor="system").inbox_id
        listed = run_cli(policy, env, "inbox", "--json")
        rows = [json.loads(line) for line in listed.stdout.splitlines()]
        assert (rows[0]["id"], rows[0]["status"]) == (queued, "pending")
        assert len(rows) == 3 and {r["status"] for r in rows[1:]} == {"refused"}  # the rule's expire and a.focal_point's answer
        assert run_cli(policy, env, "inbox", "--status", "applied", "--json").stdout.count("\n") == 2
        assert "expire" in run_cli(policy, env, "inbox", "--instance", instance).stdout
        assert run_cli(policy, env, "inbox", "--instance", "nobody").stdout.strip() == "no pending or refused events"

        denied = run_cli(policy, env, "inbox", "cancel", str(queued), "--as", "a.leader")
        assert (denied.returncode, denied.stderr.strip()) == (1, "error: only an administrator may cancel queued events: use --as system")
        done = run_cli(policy, env, "inbox", "cancel", str(queued), "--as", "system")
        assert done.returncode == 0 and done.stdout.startswith(f"cancelled: inbox #{queued} (fire expire on {instance}")
        again = run_cli(policy, env, "inbox", "cancel", str(queued), "--as", "system")
        assert again.returncode == 1 and f"inbox #{queued} is not pending: cancelled by system (" in again.stderr
        missing = run_cli(policy, env, "inbox", "cancel", "999", "--as", "system")
        assert (missing.returncode, missing.stderr.strip()) == (1, "error: no inbox event #999")
        usage = run_cli(policy, env, "inbox", "cancel", "seven", "--as", "system")
        assert usage.returncode == 2
        with store.reading() as conn:
            assert inbox.status(conn, queued)[0] == inbox.CANCELLED
            assert history.verify(conn)[1] is None
        shown = run_cli(policy, env, "history", instance, "--json")
        last = json.loads(shown.stdout.splitlines()[-1])
        assert (last["outcome"], last["trigger"], last["actor"]) == ("cancelled", "expire", last["actor"])
        assert last["actor"].startswith("system (") and "submitted by system" in last["reason"]
    finally:
        store.dispose()
