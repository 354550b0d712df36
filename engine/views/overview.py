"""What is open, what is late, who owes the next step, and what comes next: read from the store.

Two operator views live here, both read only:

* `coopflow status` with no filter: the overview per clause (workflow) and per party;
* `coopflow upcoming`: schedule occurrences, armed deadlines and emergency meetings ahead.

Definitions (also in docs/operators.md):

* **open**: an instance that is not in a final state.
* **overdue**: an open instance that (a) has an armed deadline already past (the daemon has not
  fired it yet), or (b) has gone through a *lateness transition*: a transition fired by a
  deadline timer that only the system may fire (e.g. ``overdue``, ``escalate``,
  ``deemed_received``, ``invitation_overdue``). Deadline transitions that people may also fire
  (``request_reports``, ``meeting_time``) only move an instance on schedule and do not count.
  An instance stays overdue until it reaches a final state.
* **who owes the next step**: for an open instance, every party whose roles may fire a
  transition other than a ``system`` one from the current state: ``$field.role`` is resolved
  with the instance's current fields, ``party.role`` names the party, a bare ``role`` means
  every party having that role. Guards (``when``) are not evaluated. For a transition that
  needs several parties' consent, a party that has already consented no longer owes it.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.engine import Connection

from engine import clock
from engine.notify import deliveries as notify_deliveries
from engine.scheduling import schedules
from engine.rules.actors import pattern_parties
from engine.policy.spec import SYSTEM, ConfigSpec, WorkflowSpec
from engine.store.database import consents, history, instances, timers, workflow_versions
from engine.views.text import cell

# The emergency meeting workflow of the shipped policy, and the state in which a meeting is set.
MEETING_WORKFLOW = "emergency_review"
MEETING_STATE = "convened"
MEETING_FIELD = "meeting_at"


# --------------------------------------------------------------------------- shared helpers


class Specs:
    """Workflow specs by stored version (what each instance runs), falling back to the policy."""

    def __init__(self, conn: Connection, policy):
        self.conn, self.policy = conn, policy
        self._cache: dict[str, WorkflowSpec | None] = {}

    def get(self, workflow: str, version: str | None) -> WorkflowSpec | None:
        if version is not None and version not in self._cache:
            stored = self.conn.execute(select(workflow_versions.c.spec).where(workflow_versions.c.version == version)).scalar()
            self._cache[version] = WorkflowSpec.from_stored(stored) if stored is not None else None
        return (self._cache.get(version) if version else None) or self.policy.workflows.get(workflow)


def next_steps(spec: WorkflowSpec, state: str, fields: Mapping[str, Any], config: ConfigSpec,
               consented: Mapping[str, Iterable[str]] = {}) -> dict[str, list[str]]:
    """Party -> triggers it may fire from `state` (system-only steps left out, consents counted): engine.rules.duties.owed."""
    from engine.rules import duties

    return duties.owed(spec, state, fields, config, consented)


def is_lateness(spec: WorkflowSpec | None, row: Mapping[str, Any]) -> bool:
    """Is this history row a lateness transition fired by its deadline (engine.rules.duties.is_late)?"""
    data = row.get("data") or {}
    if row.get("outcome") != "applied" or row.get("kind") != "fire" or not data.get("timer") or spec is None:
        return False
    from engine.rules import duties

    return duties.late_transition(spec, data.get("transition"), row.get("trigger"), row.get("from_state"))


def local_iso(moment: datetime, tz) -> str:
    return moment.astimezone(tz).isoformat()


def local_text(moment: datetime | None, tz) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M") if moment else ""


def _console() -> Console:
    return Console(file=sys.stdout, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _state_title(spec: WorkflowSpec | None, state: str) -> str:
    st = spec.states.get(state) if spec else None
    return st.title if st else state


# --------------------------------------------------------------------------- status overview


def build_overview(store, policy, now: datetime | None = None) -> dict[str, Any]:
    """The overview as plain data: per clause (open, overdue), the overdue list, and per party."""
    now = now or clock.now()
    tz, config = policy.tz, policy.config
    with store.reading() as conn:
        specs = Specs(conn, policy)
        rows = [dict(r) for r in conn.execute(select(instances).where(instances.c.final == 0)
                                               .order_by(instances.c.created_at, instances.c.id)).mappings()]
        ids = {r["id"] for r in rows}
        armed = {t["instance"]: t for t in conn.execute(select(timers).where(timers.c.status == "armed")).mappings()
                 if t["instance"] in ids}
        late: dict[str, list[dict]] = defaultdict(list)
        given: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for c in conn.execute(select(consents)).mappings():
            if c["expires_at"] is None or c["expires_at"] > now:
                given[c["instance"]][c["trigger"]].add(c["party"])
        by_id = {r["id"]: r for r in rows}
        query = select(history).where(history.c.kind == "fire", history.c.outcome == "applied", history.c.actor == SYSTEM)
        for h in conn.execute(query.order_by(history.c.seq)).mappings():
            row = by_id.get(h["instance"])
            if row is not None and is_lateness(specs.get(row["workflow"], row["version"]), h):
                late[h["instance"]].append(dict(h))
        spec_of = {r["id"]: specs.get(r["workflow"], r["version"]) for r in rows}
        dead_letters = notify_deliveries.dead_count(conn)

    clauses: dict[str, dict[str, Any]] = {}
    for wid, spec in policy.workflows.items():
        clauses[wid] = {"workflow": wid, "title": spec.title, "clause": spec.clause, "open": 0, "overdue": 0}
    overdue, parties = [], {p: [] for p in config.parties}
    for row in rows:
        spec = spec_of[row["id"]]
        entry = clauses.setdefault(row["workflow"], {"workflow": row["workflow"], "title": spec.title if spec else row["workflow"],
                                                     "clause": spec.clause if spec else "", "open": 0, "overdue": 0})
        entry["open"] += 1
        reasons = []
        timer = armed.get(row["id"])
        if timer is not None and timer["due_at"] < now:
            reasons.append({"why": "deadline_passed", "trigger": timer["trigger"], "at": local_iso(timer["due_at"], tz),
                            "text": f"deadline {local_text(timer['due_at'], tz)} passed ({timer['trigger']} not yet fired)"})
        for h in late.get(row["id"], []):
            reasons.append({"why": "deadline_fired", "trigger": h["trigger"], "at": local_iso(h["at"], tz),
                            "text": f"{h['trigger']} fired by its deadline at {local_text(h['at'], tz)} ({h['from_state']} → {h['to_state']})"})
        if reasons:
            entry["overdue"] += 1
            overdue.append({"instance": row["id"], "workflow": row["workflow"], "state": row["state"],
                            "state_title": _state_title(spec, row["state"]), "reasons": reasons})
        if spec is None:
            continue
        for party, triggers in next_steps(spec, row["state"], row["fields"], config, given.get(row["id"], {})).items():
            parties.setdefault(party, []).append({
                "instance": row["id"], "workflow": row["workflow"], "state": row["state"],
                "state_title": _state_title(spec, row["state"]), "since": local_iso(row["state_entered_at"], tz),
                "triggers": triggers, "overdue": bool(reasons),
                "deadline": local_iso(timer["due_at"], tz) if timer is not None else None,
            })
    return {
        "now": local_iso(now, tz),
        "dead_letters": dead_letters,  # notification deliveries given up on (coopflow deliveries --status dead)
        "workflows": sorted(clauses.values(), key=lambda c: (clause_key(c["clause"]), c["workflow"])),
        "overdue": overdue,
        "parties": [{"party": p, "title": config.parties[p].title if p in config.parties else p,
                     "open": len(items), "next_steps": sorted(items, key=lambda i: i["since"])}
                    for p, items in parties.items()],
    }


def clause_key(clause: str) -> tuple:
    """Clauses in reading order: numbers first (1, 2, 3.1 …), then the others by name."""
    parts = str(clause).split(".")
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def show_overview(runtime, as_json: bool) -> None:
    """`coopflow status` without filters: tables per clause, overdue instances and per party."""
    data = build_overview(runtime.store, runtime.policy)
    if as_json:
        return _echo_json(data)
    out = _console()
    table = Table(title=f"open instances per clause (at {data['now'][:16].replace('T', ' ')})")
    for column in ("clause", "workflow", "open", "overdue"):
        table.add_column(column, justify="right" if column in ("open", "overdue") else "left")
    for c in data["workflows"]:
        table.add_row(*map(cell, (c["clause"], f"{c['workflow']} — {c['title']}", c["open"], c["overdue"])))
    out.print(table)
    if data["overdue"]:
        late = Table(title=f"{len(data['overdue'])} overdue instance(s)")
        for column in ("instance", "workflow", "state", "why"):
            late.add_column(column)
        for o in data["overdue"]:
            late.add_row(*map(cell, (o["instance"], o["workflow"], f"{o['state']} — {o['state_title']}",
                                     "; ".join(r["text"] for r in o["reasons"]))))
        out.print(late)
    owes = Table(title="who owes the next step")
    for column in ("party", "instance", "workflow", "state", "since", "may fire"):
        owes.add_column(column)
    for p in data["parties"]:
        if not p["next_steps"]:
            owes.add_row(cell(p["party"]), "—", "", "", "", "")
        for i, step in enumerate(p["next_steps"]):
            owes.add_row(*map(cell, (p["party"] if i == 0 else "", step["instance"] + (" (overdue)" if step["overdue"] else ""),
                                     step["workflow"], f"{step['state']} — {step['state_title']}",
                                     step["since"][:16].replace("T", " "), ", ".join(step["triggers"]))))
    out.print(owes)
    if data["dead_letters"]:
        out.print(f"{data['dead_letters']} notification(s) could not be delivered: coopflow deliveries --status dead")


# --------------------------------------------------------------------------- upcoming


def build_upcoming(store, policy, days: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """Schedule occurrences, armed deadlines and emergency meetings due within `days` days, by time.

    Deadlines already past but still armed (the daemon has not fired them) are listed too,
    marked overdue. A meeting's own deadline (`meeting_time`) is shown once, as the meeting.
    """
    now = now or clock.now()
    horizon = now + timedelta(days=days)
    tz = policy.tz
    items: list[tuple[datetime, dict[str, Any]]] = []
    # At most one occurrence per listed month, and listed months are >= 28 days apart.
    count = days // 28 + 2
    for schedule, at, host in schedules.upcoming(store, policy, now, count=count):
        if at <= horizon:
            items.append((at, {"kind": "schedule", "schedule": schedule.id, "workflow": schedule.start,
                               "title": schedule.title or schedule.id, "clause": schedule.clause, "host": host}))
    with store.reading() as conn:
        specs = Specs(conn, policy)
        meetings = {r["id"]: dict(r) for r in conn.execute(select(instances).where(
            instances.c.workflow == MEETING_WORKFLOW, instances.c.state == MEETING_STATE, instances.c.final == 0)).mappings()}
        armed = [dict(r) for r in conn.execute(select(timers).where(timers.c.status == "armed").order_by(timers.c.due_at)).mappings()]
        versions = dict(conn.execute(select(instances.c.id, instances.c.version).where(
            instances.c.id.in_([t["instance"] for t in armed]))).all()) if armed else {}
        meeting_timers: dict[str, dict] = {}
        for t in armed:
            if t["instance"] in meetings and t["state"] == MEETING_STATE:
                meeting_timers[t["instance"]] = t
                continue
            if t["due_at"] > horizon:
                continue
            spec = specs.get(t["workflow"], versions.get(t["instance"]))
            deadline = spec.states[t["state"]].deadline if spec and t["state"] in spec.states else None
            items.append((t["due_at"], {"kind": "deadline", "workflow": t["workflow"], "instance": t["instance"],
                                        "state": t["state"], "state_title": _state_title(spec, t["state"]),
                                        "trigger": t["trigger"], "clause": deadline.clause if deadline else None,
                                        "overdue": t["due_at"] < now}))
        for iid, row in meetings.items():
            timer = meeting_timers.get(iid)
            at = _meeting_time(row["fields"].get(MEETING_FIELD)) or (timer["due_at"] if timer else None)
            if at is None or at > horizon:
                continue
            items.append((at, {"kind": "meeting", "workflow": MEETING_WORKFLOW, "instance": iid, "state": row["state"],
                               "issue": row["fields"].get("issue"), "venue": row["fields"].get("venue"),
                               "meeting_at_set": bool(row["fields"].get(MEETING_FIELD)),
                               "trigger": timer["trigger"] if timer else None}))
    items.sort(key=lambda item: (item[0], item[1]["kind"], item[1].get("instance", "")))
    return [{"at": local_iso(at, tz), **data} for at, data in items]


def _meeting_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def show_upcoming(runtime, days: int, as_json: bool) -> None:
    """`coopflow upcoming`: one table sorted by time, in the policy's time zone."""
    items = build_upcoming(runtime.store, runtime.policy, days)
    if as_json:
        return _echo_json(items)
    table = Table(title=f"{len(items)} item(s) in the next {days} day(s) ({runtime.policy.tz.key})")
    for column in ("at", "what", "workflow", "instance", "details"):
        table.add_column(column)
    for item in items:
        at = item["at"][:16].replace("T", " ")
        if item["kind"] == "schedule":
            table.add_row(*map(cell, (at, "schedule", item["workflow"], "",
                                      f"{item['title']}" + (f" — host {item['host']}" if item["host"] else ""))))
        elif item["kind"] == "deadline":
            late = "OVERDUE " if item["overdue"] else ""
            table.add_row(*map(cell, (at, f"{late}deadline", item["workflow"], item["instance"],
                                      f"{item['state']} — {item['state_title']}: fires {item['trigger']}")))
        else:
            when = "" if item["meeting_at_set"] else " (no time set: 72 h after consent)"
            table.add_row(*map(cell, (at, "emergency meeting", item["workflow"], item["instance"], f"{item['issue'] or ''}{when}")))
    _console().print(table)
