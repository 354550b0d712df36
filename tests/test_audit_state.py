"""`coopflow audit verify` covers the state, not only the chain: instances, consents, timers and
schedule occurrences must follow from the (keyed) history, and anchors outside the database catch
a cut tail with a forged head or a wiped history. Every case runs on SQLite and PostgreSQL.

The store is opened the way every command opens it (open_runtime: keyed, anchored), a small
history is built through the executor, then an intruder with SQL access (but not the key file)
tampers with it.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select, text, update

from engine.execution.runtime import Runtime, open_runtime
from engine.store import anchors, history
from engine.store import audit as auditing
from engine.store.database import SqlStore, consents, instances, meta, timers
from engine.store.database import history as history_table

ISSUE = {"issue": "Tin giả về dịch bệnh lan truyền trên mạng xã hội"}


@dataclass
class Scene:
    runtime: Runtime
    config: Path
    meeting: str  # emergency_review instance: dic.leader agreed, police has not


def point_at(config: Path, url: str) -> None:
    text_ = config.read_text(encoding="utf-8")
    assert text_.count("store: sqlite:///coopflow.db\n") == 1
    config.write_text(text_.replace("store: sqlite:///coopflow.db\n", f"store: {json.dumps(url)}\n"), encoding="utf-8")


@pytest.fixture
def scene(shipped_policy: Path, store_url: str, store: SqlStore) -> Scene:
    point_at(shipped_policy, store_url)
    rt = open_runtime(shipped_policy)
    meeting = rt.executor.submit_start("emergency_review", "dic.leader", ISSUE).instance
    other = rt.executor.submit_start("emergency_review", "police.leader", {"issue": "Lừa đảo qua điện thoại"}).instance
    rt.executor.submit_fire(meeting, "agree", "dic.leader", {})
    rt.executor.submit_fire(other, "withdraw", "police.leader", {})
    rt.executor.submit_fire(meeting, "hold", "dic.leader", {})  # refused: not allowed from proposed
    rt.settle()
    report = auditing.verify(rt.store)
    assert report.ok, report.problems
    assert (report.rows, report.instances, report.consents) == (5, 2, 1)
    yield Scene(rt, shipped_policy, meeting)
    rt.store.dispose()


def cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("COOPFLOW_STORE_URL", "COOPFLOW_CLOCK_START", "COOPFLOW_CONFIG")}
    return subprocess.run([sys.executable, "-m", "engine", *args, "-c", str(config)], capture_output=True, text=True,
                          env=env, timeout=60, encoding="utf-8")


def first_problem(scene: Scene) -> str:
    report = auditing.verify(scene.runtime.store)
    assert not report.ok, "tampering not detected"
    return report.problems[0]


def rows(scene: Scene) -> list[dict]:
    with scene.runtime.store.reading() as conn:
        return history.rows(conn)


# ---- the state edited behind the history's back


def test_intact_store_verifies_on_the_cli(scene: Scene):
    done = cli(scene.config, "audit", "verify")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: 5 history rows, chain intact; 0 anchors match; state follows from the history "
                                  "(2 instances, 1 consents, 1 armed timers, 0 schedule occurrences)"), done.stdout


def test_instance_state_edited(scene: Scene):
    with scene.runtime.store.transaction() as conn:
        conn.execute(update(instances).where(instances.c.id == scene.meeting).values(state="convened"))
    assert first_problem(scene) == f"instance {scene.meeting}: state is 'convened' but the history says 'proposed' (history row 1)"
    done = cli(scene.config, "audit", "verify")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1].startswith(f"TAMPERED: instance {scene.meeting}: state is 'convened'")


def test_instance_field_edited(scene: Scene):
    with scene.runtime.store.transaction() as conn:
        fields = conn.execute(select(instances.c.fields).where(instances.c.id == scene.meeting)).scalar_one()
        conn.execute(update(instances).where(instances.c.id == scene.meeting).values(fields={**fields, "issue": "khác"}))
    assert first_problem(scene) == (f"instance {scene.meeting}: field 'issue' is 'khác' but the history says "
                                    f"{ISSUE['issue']!r} (history row 1)")


def test_forged_consent_detected(scene: Scene):
    """A consent row for the police leader convenes a meeting only the DIC leader agreed to: caught."""
    with scene.runtime.store.transaction() as conn:
        theirs = dict(conn.execute(select(consents).where(consents.c.instance == scene.meeting)).mappings().one())
        conn.execute(insert(consents).values(**{**theirs, "party": "police", "actor": "police.leader"}))
    assert first_problem(scene) == f"instance {scene.meeting}: consent of police to 'agree' is not in the history (recorded by hand)"


def test_timer_due_moved(scene: Scene):
    with scene.runtime.store.transaction() as conn:
        due = conn.execute(select(timers.c.due_at).where(timers.c.instance == scene.meeting)).scalar_one()
        conn.execute(update(timers).where(timers.c.instance == scene.meeting).values(due_at=due.replace(year=due.year + 1)))
    assert first_problem(scene).startswith(f"timer {scene.meeting}:1 of instance {scene.meeting}: due_at is ")


# ---- the chain rewritten, cut or wiped


def test_rewrite_with_recomputed_hashes_is_caught_by_the_key(scene: Scene):
    """Without the key file an intruder's recomputed chain does not verify: the first rewritten row is named."""
    chain = rows(scene)
    with scene.runtime.store.transaction() as conn:
        prev = chain[1]["hash"]
        for r in chain[2:]:
            r = {**r, "reason": "đã sửa" if r["seq"] == 3 else r["reason"], "prev_hash": prev}
            r["hash"] = history.row_hash(prev, r)  # what the intruder can compute: plain sha256
            conn.execute(update(history_table).where(history_table.c.seq == r["seq"]).values(
                reason=r["reason"], prev_hash=prev, hash=r["hash"]))
            prev = r["hash"]
        conn.execute(update(meta).where(meta.c.key == history.HEAD_KEY).values(value=f"{chain[-1]['seq']}:{prev}"))
    assert first_problem(scene) == "history row 3: its content does not match its hash (edited by hand)"


def test_cut_tail_with_forged_head_is_caught_by_the_anchor(scene: Scene):
    assert anchors.write_anchor(scene.runtime.store).seq == 5  # as the daemon does every N seconds and at stop
    chain = rows(scene)
    with scene.runtime.store.transaction() as conn:
        conn.execute(delete(history_table).where(history_table.c.seq > 3))
        conn.execute(update(meta).where(meta.c.key == history.HEAD_KEY).values(value=f"3:{chain[2]['hash']}"))
    with scene.runtime.store.reading() as conn:
        assert history.verify(conn) == (3, None)  # the chain alone cannot tell
    problem = first_problem(scene)
    assert problem.startswith("history row 4: missing; the chain ends at row 3 but the anchor ")
    assert "recorded row 5" in problem


def test_wiped_history_is_caught_by_the_anchor(scene: Scene):
    anchors.write_anchor(scene.runtime.store)
    with scene.runtime.store.transaction() as conn:
        conn.execute(delete(history_table))
        conn.execute(delete(meta).where(meta.c.key == history.HEAD_KEY))
    assert first_problem(scene).startswith("history row 1: missing; the chain ends at row 0 but the anchor ")
    done = cli(scene.config, "audit", "verify")  # opening it again is refused outright
    assert done.returncode == 1, done.stdout
    assert "has no history, but the anchors" in done.stderr and "restore it from a backup" in done.stderr
    assert "Traceback" not in done.stderr


def test_anchor_also_written_to_json_log_and_checked_from_a_copy(scene: Scene, tmp_path: Path, log_records):
    anchor = anchors.write_anchor(scene.runtime.store)
    logged = [r for r in log_records if "anchor" in r]
    assert logged and logged[-1]["anchor"] == anchor.as_json()
    shipped = tmp_path / "shipped.jsonl"  # a JSON log line as shipped to another host
    shipped.write_text(json.dumps({"ts": anchor.at, "level": "INFO", "message": "audit anchor", "anchor": anchor.as_json()}) + "\n",
                       encoding="utf-8")
    scene.runtime.store.audit.paths.anchor_file.unlink()  # the intruder also removed the local anchor file
    chain = rows(scene)
    with scene.runtime.store.transaction() as conn:
        conn.execute(delete(history_table).where(history_table.c.seq == 5))
        conn.execute(update(meta).where(meta.c.key == history.HEAD_KEY).values(value=f"4:{chain[3]['hash']}"))
    done = cli(scene.config, "audit", "verify", "--anchors", str(shipped))
    assert done.returncode == 1
    assert "TAMPERED: history row 5: missing; the chain ends at row 4" in done.stderr


def test_key_file_is_private_and_outside_the_database(scene: Scene):
    path = scene.runtime.store.audit.paths.key_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = json.loads(path.read_text(encoding="utf-8"))["key"]
    with scene.runtime.store.reading() as conn:
        assert all(key not in v for v in conn.execute(select(meta.c.value)).scalars())


# ---- a wiped store is refused on open


def test_wiped_store_refused_on_open(scene: Scene, store_url: str):
    anchors.write_anchor(scene.runtime.store)
    scene.runtime.store.dispose()
    if store_url.startswith("sqlite"):
        Path(store_url[len("sqlite:///"):]).unlink()
        for extra in ("-wal", "-shm"):
            Path(store_url[len("sqlite:///"):] + extra).unlink(missing_ok=True)
    else:
        raw = SqlStore(store_url)
        try:
            with raw.transaction() as conn:
                names = [r[0] for r in conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))]
                for name in names:
                    conn.execute(text(f'DROP TABLE "{name}" CASCADE'))
        finally:
            raw.dispose()
    done = cli(scene.config, "audit", "verify")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stderr.strip().splitlines()[-1].startswith("store unavailable: ") and "Traceback" not in done.stderr
    # `coopflow run` and `init` may create a store: not this one, the anchors know it existed
    policy = scene.runtime.policy
    with pytest.raises(anchors.StoreWiped, match="restore it from a backup") as refused:
        anchors.open_store(store_url, policy.config.audit, policy.root, create=True)
    assert "up to row 5" in str(refused.value)
    if store_url.startswith("sqlite"):
        assert not Path(store_url[len("sqlite:///"):]).exists()  # not silently recreated


def test_missing_key_file_refused(scene: Scene):
    scene.runtime.store.audit.paths.key_file.unlink()
    done = cli(scene.config, "audit", "verify")
    assert done.returncode == 1
    assert "but its key file" in done.stderr and "is missing" in done.stderr


# ---- a store from before the key: keyed from the row where the key was introduced


def test_existing_store_gets_keyed_from_the_next_row(shipped_policy: Path, store_url: str, store: SqlStore):
    from engine.execution.executor import Executor
    from engine.policy.loader import load_policy

    point_at(shipped_policy, store_url)
    old = Runtime(load_policy(shipped_policy), store, Executor(store, load_policy(shipped_policy)))
    first = old.executor.submit_start("emergency_review", "dic.leader", ISSUE).instance
    old.settle()  # one unkeyed row, as an older coopflow wrote it
    rt = open_runtime(shipped_policy)
    try:
        assert rt.store.audit.keying.keyed_from == 2
        rt.executor.submit_fire(first, "agree", "dic.leader", {})
        rt.settle()
        assert auditing.verify(rt.store).ok
        chain = rows(Scene(rt, shipped_policy, first))
        assert chain[0]["hash"] == history.row_hash(history.GENESIS, chain[0])  # plain sha256
        assert chain[1]["hash"] != history.row_hash(chain[0]["hash"], chain[1])  # keyed
    finally:
        rt.store.dispose()


def test_row_hash_never_raises_on_any_str():
    row = {"seq": 1, "instance": "x\udcff", "reason": "\ud800 lẻ", "data": {"k\udfff": "\x00"}, "at": "2025-01-01"}
    assert len(history.row_hash(history.GENESIS, row)) == 64
    assert history.row_hash(history.GENESIS, row, b"k" * 32) != history.row_hash(history.GENESIS, row)


# ---- one snapshot: no false alarms under a concurrent writer


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_no_false_alarms_while_a_writer_applies_events(scene: Scene):
    stop, errors, cycles = threading.Event(), [], []

    def writer():
        try:
            while not stop.is_set():
                cycles.append(1)
                instance = scene.runtime.executor.submit_start("emergency_review", "dic.leader", ISSUE, apply=True).instance
                scene.runtime.executor.submit_fire(instance, "agree", "dic.leader", {}, apply=True)
                scene.runtime.executor.submit_fire(instance, "withdraw", "dic.leader", {}, apply=True)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        runs, alarms = 0, []
        while (runs < 30 or len(cycles) < 20) and runs < 2000 and not errors:
            report = auditing.verify(scene.runtime.store)
            runs += 1
            if not report.ok:
                alarms.append(report.problems)
    finally:
        stop.set()
        thread.join(30)
    assert not errors
    assert alarms == []
    assert auditing.verify(scene.runtime.store).rows > 5 + 3 * 19  # the writer really wrote meanwhile
