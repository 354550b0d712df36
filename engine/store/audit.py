"""`coopflow audit verify`: the chain, the anchors, and a replay of the history against the state.

Everything is read in ONE snapshot (REPEATABLE READ on PostgreSQL, one read transaction on
SQLite), so a daemon writing meanwhile never causes a false alarm. The anchors are read before
the snapshot is taken: every anchor then describes a head the snapshot already contains.

The replay needs no workflow code: every applied history row carries an `audit` record in its
data (written by the executor, covered by the row's hash): the instance's seq and fields after
the event, the version it started on, the timer it armed, the consents to its trigger after it.
From these, the instances, consents, timers and schedule occurrences that must exist are
rebuilt and compared with the tables; the first mismatch is named.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, overload

from sqlalchemy import select
from sqlalchemy.engine import Connection

from engine.store import history
from engine.store.anchors import STORE_ID_KEY, Anchor, read_anchors
from engine.store.database import SqlStore, consents, inbox, instances, meta, occurrences, timers
from engine.store.statuses import EventKind, InboxStatus, Outcome, TimerStatus

APPLIED = Outcome.APPLIED
ARMED, DISARMED, FIRED = TimerStatus.ARMED, TimerStatus.DISARMED, TimerStatus.FIRED


def consent_record(conn: Connection, instance: str, trigger: str) -> list[list[Any]]:
    """The consents to (instance, trigger) as they stand, for the history's audit record."""
    rows = conn.execute(select(consents).where(consents.c.instance == instance, consents.c.trigger == trigger)
                        .order_by(consents.c.party)).mappings()
    return [[r["party"], r["actor"], _iso(r["at"]), _iso(r["expires_at"])] for r in rows]


def state_record(conn: Connection, instance: str, trigger: str | None, kind: str, seq: int | None, fields: dict | None,
                 version: str, armed: list, approvals: bool) -> dict[str, Any]:
    """The `audit` record of an applied event's history row: what the replay needs to rebuild the state."""
    record: dict[str, Any] = {}
    if seq is not None:
        record.update(seq=seq, fields=fields)
    if kind == EventKind.START:
        record["version"] = version
    if armed:
        timer = armed[-1]
        record["timer"] = {"id": timer.id, "state": timer.state, "trigger": timer.trigger, "due_at": _iso(timer.due_at)}
    if approvals and trigger:
        record["consents"] = consent_record(conn, instance, trigger)
    return record


@dataclass
class Report:
    rows: int = 0
    instances: int = 0
    timers: int = 0
    consents: int = 0
    occurrences: int = 0
    anchors: int = 0
    legacy: int = 0  # instances with rows older than the audit record: only their state is checked
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@contextmanager
def snapshot(store: SqlStore) -> Iterator[Connection]:
    """One consistent read-only snapshot of the whole store."""
    with store.explained_errors():
        conn = store.engine.connect().execution_options(coopflow_read=True)
        if store.dialect == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn, conn.begin():
            yield conn


def verify(store: SqlStore, extra_anchors: tuple[str, ...] = ()) -> Report:
    """Check chain, anchors and state; `report.problems[0]` is the first mismatch."""
    context = getattr(store, "audit", None)
    sources = ([str(context.paths.anchor_file)] if context else []) + list(extra_anchors)
    anchors = read_anchors(*sources)  # before the snapshot: each describes a head it contains
    report = Report()
    with snapshot(store) as conn:
        store_id = conn.execute(select(meta.c.value).where(meta.c.key == STORE_ID_KEY)).scalar()
        keying = context.keying if context else history.keying_of(conn)
        rows = history.rows(conn)
        head = conn.execute(select(meta.c.value).where(meta.c.key == history.HEAD_KEY)).scalar()
        report.rows, broken = history.check(rows, head, keying)
        if broken:
            report.problems.append(str(broken))
            return report
        mine = [a for a in anchors if store_id is None or a.store_id == store_id]
        report.anchors = len(mine)
        problem = _check_anchors(rows, mine)
        if problem:
            report.problems.append(problem)
            return report
        report.problems.extend(_replay(conn, rows, report))
    return report


def _check_anchors(rows: list[dict], anchors: list[Anchor]) -> str | None:
    by_seq = {r["seq"]: r["hash"] for r in rows}
    for anchor in sorted(anchors, key=lambda a: a.seq):
        if anchor.seq not in by_seq:
            return (f"history row {len(rows) + 1}: missing; the chain ends at row {len(rows)} but the anchor "
                    f"{anchor.source} recorded row {anchor.seq} at {anchor.at} (rows cut off the end, or the history wiped)")
        if by_seq[anchor.seq] != anchor.hash:
            return (f"history row {anchor.seq}: its hash differs from the anchor {anchor.source} of {anchor.at} "
                    f"(the chain was rewritten up to this row)")
    return None


def _replay(conn: Connection, rows: list[dict], report: Report) -> list[str]:
    expected: dict[str, dict[str, Any]] = {}
    want_consents: dict[tuple[str, str], tuple[list, int]] = {}
    want_timers: dict[str, dict[str, Any]] = {}
    started_by_schedule: dict[tuple[str, str], tuple[str, int]] = {}
    legacy: set[str] = set()
    for row in rows:
        data = row["data"] or {}
        fired = data.get("timer")
        if row["kind"] == EventKind.START and data.get("schedule") and data.get("nominal_at"):
            started_by_schedule[(data["schedule"], _iso(data["nominal_at"]))] = (row["instance"], row["seq"])
        if row["outcome"] == APPLIED:
            record = data.get("audit")
            instance = row["instance"]
            if record is None:
                legacy.add(instance)
            if row["kind"] == EventKind.START:
                expected[instance] = {"workflow": row["workflow"], "state": row["to_state"], "seq": 1, "at": row["seq"],
                                      "fields": None, "version": None}
            current = expected.get(instance)
            if current is not None and (record and "seq" in record or record is None and row["kind"] in (EventKind.START, EventKind.FIRE)):
                if row["kind"] != EventKind.START:
                    current["seq"] += 1
                    for timer in want_timers.values():
                        if timer["instance"] == instance and timer["status"] == ARMED:
                            timer["status"] = DISARMED
                current.update(state=row["to_state"], at=row["seq"])
            if current is not None and record:
                if "seq" in record:
                    current["seq"] = record["seq"]
                if "fields" in record:
                    current["fields"] = record["fields"]
                if "version" in record:
                    current["version"] = record["version"]
                if record.get("timer"):
                    t = record["timer"]
                    want_timers[t["id"]] = {"instance": instance, "state": t["state"], "trigger": t["trigger"],
                                            "due_at": t["due_at"], "status": ARMED, "at": row["seq"]}
                if "consents" in record:
                    want_consents[(instance, row["trigger"])] = (record["consents"], row["seq"])
        if fired in want_timers:
            want_timers[fired]["status"] = FIRED
    report.legacy = len(legacy)
    problems: list[str] = []
    problems += _compare_instances(conn, expected, legacy, report)
    problems += _compare_consents(conn, want_consents, legacy, report)
    problems += _compare_timers(conn, want_timers, legacy, report)
    problems += _compare_occurrences(conn, started_by_schedule, report)
    return problems


def _compare_instances(conn, expected, legacy, report) -> list[str]:
    problems = []
    found = {r["id"]: dict(r) for r in conn.execute(select(instances)).mappings()}
    report.instances = len(found)
    for iid, row in sorted(found.items()):
        want = expected.get(iid)
        if want is None:
            problems.append(f"instance {iid}: not in the history (created or restored by hand)")
            continue
        where = f"history row {want['at']}"
        for name in ("workflow", "state", "seq"):
            if row[name] != want[name]:
                problems.append(f"instance {iid}: {name} is {row[name]!r} but the history says {want[name]!r} ({where})")
                break
        else:
            if iid in legacy:
                continue
            if want["version"] is not None and row["version"] != want["version"]:
                problems.append(f"instance {iid}: version is {row['version']!r} but the history says {want['version']!r}")
            elif want["fields"] is not None and _norm(row["fields"]) != _norm(want["fields"]):
                name = next(k for k in sorted(set(row["fields"]) | set(want["fields"]), key=str)
                            if _norm(row["fields"].get(k)) != _norm(want["fields"].get(k)))
                problems.append(f"instance {iid}: field {name!r} is {row['fields'].get(name)!r} but the history says "
                                f"{want['fields'].get(name)!r} ({where})")
    for iid in sorted(set(expected) - set(found)):
        problems.append(f"instance {iid}: missing (the history started it at history row {expected[iid]['at']})")
    return problems


def _compare_consents(conn, wanted, legacy, report) -> list[str]:
    problems = []
    found: dict[tuple[str, str], list] = {}
    for r in conn.execute(select(consents).order_by(consents.c.party)).mappings():
        found.setdefault((r["instance"], r["trigger"]), []).append([r["party"], r["actor"], _iso(r["at"]), _iso(r["expires_at"])])
    report.consents = sum(len(v) for v in found.values())
    for key in sorted(set(found) | set(wanted)):
        instance, trigger = key
        if instance in legacy:
            continue
        have, (want, seq) = found.get(key, []), wanted.get(key, ([], None))
        have_parties, want_parties = {c[0]: c for c in have}, {c[0]: c for c in want}
        for party in sorted(set(have_parties) | set(want_parties)):
            if party not in want_parties:
                problems.append(f"instance {instance}: consent of {party} to {trigger!r} is not in the history "
                                f"(recorded by hand)")
            elif party not in have_parties:
                problems.append(f"instance {instance}: consent of {party} to {trigger!r} (history row {seq}) is missing")
            elif _norm(have_parties[party]) != _norm(want_parties[party]):
                problems.append(f"instance {instance}: consent of {party} to {trigger!r} is {have_parties[party]} but the "
                                f"history says {want_parties[party]} (history row {seq})")
    return problems


def _compare_timers(conn, wanted, legacy, report) -> list[str]:
    problems = []
    found = {r["id"]: dict(r) for r in conn.execute(select(timers)).mappings()}
    report.timers = sum(1 for t in found.values() if t["status"] == ARMED)
    for tid in sorted(set(found) | set(wanted)):
        have, want = found.get(tid), wanted.get(tid)
        instance = (have or want)["instance"]
        if instance in legacy:
            continue
        if want is None:
            problems.append(f"timer {tid} of instance {instance}: not in the history (armed by hand)")
        elif have is None:
            problems.append(f"timer {tid} of instance {instance}: missing (armed by history row {want['at']})")
        else:
            for name in ("instance", "state", "trigger", "due_at", "status"):
                value = _iso(have[name]) if name == "due_at" else have[name]
                if _norm(value) != _norm(want[name]):
                    problems.append(f"timer {tid} of instance {instance}: {name} is {value!r} but the history says "
                                    f"{want[name]!r} (history row {want['at']})")
                    break
    return problems


def _compare_occurrences(conn, started, report) -> list[str]:
    problems = []
    pending = {(k.split(":", 2)[1], _iso(k.split(":", 2)[2])) for k in conn.execute(
        select(inbox.c.key).where(inbox.c.status == InboxStatus.PENDING, inbox.c.key.like("schedule:%"))).scalars() if k.count(":") >= 2}
    rows = list(conn.execute(select(occurrences).order_by(occurrences.c.nominal_at)).mappings())
    report.occurrences = len(rows)
    seen = set()
    for r in rows:
        key = (r["schedule"], _iso(r["nominal_at"]))
        seen.add(key)
        got = started.get(key)
        if got is None:
            if key in pending:
                continue  # fired, its start not applied yet
            problems.append(f"occurrence of schedule {r['schedule']} at {key[1]}: not in the history (recorded by hand)")
        elif r["instance"] != got[0]:
            problems.append(f"occurrence of schedule {r['schedule']} at {key[1]}: instance is {r['instance']!r} but the "
                            f"history says {got[0]!r} (history row {got[1]})")
    for key in sorted(set(started) - seen):
        problems.append(f"occurrence of schedule {key[0]} at {key[1]}: missing (started by history row {started[key][1]})")
    return problems


@overload
def _iso(value: None) -> None: ...
@overload
def _iso(value: str | datetime) -> str: ...
def _iso(value: str | datetime | None) -> str | None:
    """An instant as UTC ISO text (strings are parsed), so stored and recorded ones compare."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
    else:
        moment = value
    return moment.astimezone(UTC).isoformat() if moment.tzinfo else moment.isoformat()


def _norm(value) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
