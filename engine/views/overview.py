"""What is open, what is late, who owes the next step, and what comes next: built from the read model.

Two operator views are built here as plain data (engine/views/render.py prints them), both
read only and both bounded: counts come from SQL aggregates, lists are one page long.

* `coopflow status` with no filter: the overview per clause (workflow) and state, and per party;
* `coopflow upcoming`: schedule occurrences, armed deadlines and meetings ahead.

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
* **meetings**: the instances of every workflow that declares ``meeting:`` (docs/policy.md), in
  its ``meeting.state``, at the time in its ``meeting.at`` field, else at that state's deadline.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from contextlib import closing
from datetime import datetime, timedelta
from typing import Any

from engine import clock
from engine.policy.spec import ConfigSpec, MeetingSpec, WorkflowSpec
from engine.store import Tx, reads
from engine.store import deliveries as delivery_rows
from engine.store.statuses import EventKind, Outcome

DEFAULT_LIMIT = 20      # rows per list on one page of `coopflow status`
UPCOMING_LIMIT = 100    # rows on one page of `coopflow upcoming`
MAX_LIMIT = 1000        # a page is never longer (the per-page reads use bounded IN lists)


# --------------------------------------------------------------------------- shared helpers


class Specs:
    """Workflow specs by stored version (what each instance runs), falling back to the policy."""

    def __init__(self, conn: Tx, policy):
        self.conn, self.policy = conn, policy
        self._cache: dict[str, WorkflowSpec | None] = {}

    def get(self, workflow: str, version: str | None) -> WorkflowSpec | None:
        if version is not None and version not in self._cache:
            stored = reads.stored_spec(self.conn, version)
            self._cache[version] = WorkflowSpec.from_stored(stored) if stored is not None else None
        return (self._cache.get(version) if version else None) or self.policy.workflows.get(workflow)


def next_steps(spec: WorkflowSpec, state: str, fields: Mapping[str, Any], config: ConfigSpec,
               consented: Mapping[str, Iterable[str]] = {}) -> dict[str, list[str]]:
    """Party -> triggers it may fire from `state` (system-only steps left out, consents counted): engine.rules.duties.owed."""
    from engine.rules import duties

    return duties.owed(spec, state, fields, config, consented)


def party_refs(specs: Iterable[WorkflowSpec]) -> dict[str, list[str]]:
    """Field -> the workflows whose role patterns name it (`$field.role`): with the state, those
    fields' values decide who owes what."""
    refs: dict[str, set[str]] = {}
    for spec in specs:
        for t in spec.transitions:
            for head in (pattern.rpartition(".")[0] for pattern in t.by):
                if head.startswith("$"):
                    refs.setdefault(head[1:], set()).add(spec.id)
    return {name: sorted(refs[name]) for name in sorted(refs)}


def is_lateness(spec: WorkflowSpec | None, row: Mapping[str, Any]) -> bool:
    """Is this history row a lateness transition fired by its deadline (engine.rules.duties.is_late)?"""
    data = row.get("data") or {}
    if row.get("outcome") != Outcome.APPLIED or row.get("kind") != EventKind.FIRE or not data.get("timer") or spec is None:
        return False
    from engine.rules import duties

    return duties.late_transition(spec, data.get("transition"), row.get("trigger"), row.get("from_state"))


def lateness_transitions(spec_of_version: Mapping[str, WorkflowSpec | None]) -> list[tuple[str, str, str]]:
    """(version, trigger, from state) of each lateness transition (engine.rules.duties.is_late):
    fired by a deadline, it makes its instance late. The read model matches history rows to these."""
    from engine.rules import duties

    return sorted({(version, t.trigger, source) for version, spec in spec_of_version.items() if spec is not None
                   for t in spec.transitions for source in spec.sources_of(t) if duties.is_late(spec, t, source)})


def meeting_workflows(policy) -> dict[str, MeetingSpec]:
    """Workflow id -> its `meeting:` declaration, for every workflow whose instances are meetings.

    The one place views (upcoming, the calendar) and the report learn which workflows are meetings."""
    return {wid: spec.meeting for wid, spec in policy.workflows.items() if spec.meeting is not None}


def subject_of(spec: WorkflowSpec | None, fields: Mapping[str, Any] | None) -> Any:
    """The value of the field the workflow declares as `subject:` (None when it declares none)."""
    return (fields or {}).get(spec.subject) if spec is not None and spec.subject else None


def clause_key(clause: str) -> tuple:
    """Clauses in reading order: numbers first (1, 2, 3.1 …), then the others by name."""
    parts = str(clause).split(".")
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def local_iso(moment: datetime, tz) -> str:
    return moment.astimezone(tz).isoformat()


def local_text(moment: datetime | None, tz) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M") if moment else ""


def state_title(spec: WorkflowSpec | None, state: str) -> str:
    st = spec.states.get(state) if spec else None
    return st.title if st else state


def page_bounds(limit: int, page: int) -> tuple[int, int]:
    """(limit, offset) of page `page` (1-based), the limit kept within 1..MAX_LIMIT."""
    limit = max(1, min(int(limit), MAX_LIMIT))
    return limit, (max(1, int(page)) - 1) * limit


# --------------------------------------------------------------------------- status overview


def build_overview(store, policy, now: datetime | None = None, limit: int = DEFAULT_LIMIT, page: int = 1) -> dict[str, Any]:
    """The overview as plain data: per clause and state (open, overdue), one page of the overdue
    instances, and per party how many instances it owes a step on with one page of them."""
    now = now or clock.now()
    tz, config = policy.tz, policy.config
    limit, offset = page_bounds(limit, page)
    with store.reading() as conn:
        specs = Specs(conn, policy)
        refs = party_refs(policy.workflows.values())
        groups = reads.open_groups(conn, refs)
        spec_of = {g["version"]: specs.get(g["workflow"], g["version"]) for g in groups}
        pinned = party_refs(s for s in spec_of.values() if s is not None)
        if any(not set(ws) <= set(refs.get(name, ())) for name, ws in pinned.items()):  # an older version names other fields
            refs = {name: sorted({*refs.get(name, ()), *pinned.get(name, ())}) for name in sorted({*refs, *pinned})}
            groups = reads.open_groups(conn, refs)
        lateness = lateness_transitions(spec_of)
        overdue_all = reads.overdue_instances(conn, now, lateness)
        late = Counter((workflow, state) for _, workflow, _, state in overdue_all)
        overdue_rows = [dict(zip(("id", "workflow", "version", "state"), r, strict=False)) for r in overdue_all[offset:offset + limit]]
        given = reads.live_consents(conn, now, refs)
        owed = _Owed(policy, spec_of, given)
        totals = owed.count(groups)
        steps = owed.page(conn, refs, totals, limit, offset)
        shown = [r["id"] for r in overdue_rows] + [s["instance"] for items in steps.values() for s in items]
        reasons = reads.overdue_reasons(conn, list(dict.fromkeys(shown)), now, lateness)
        deadlines = reads.armed_deadlines_of(conn, [s["instance"] for items in steps.values() for s in items])
        dead_letters = delivery_rows.dead_count(conn)

    clauses = _clauses(policy, spec_of, groups, late)
    overdue = [{"instance": r["id"], "workflow": r["workflow"], "state": r["state"],
                "state_title": state_title(spec_of.get(r["version"]) or policy.workflows.get(r["workflow"]), r["state"]),
                "reasons": [_reason(x, tz) for x in reasons.get(r["id"], [])]} for r in overdue_rows]
    parties = []
    for party in dict.fromkeys([*config.parties, *totals]):
        items = [{**s, "since": local_iso(s["since"], tz), "overdue": bool(reasons.get(s["instance"])),
                  "deadline": local_iso(deadlines[s["instance"]], tz) if s["instance"] in deadlines else None}
                 for s in steps.get(party, [])]
        parties.append({"party": party, "title": config.parties[party].title if party in config.parties else party,
                        "open": totals.get(party, 0), "next_steps": items})
    overdue_total = len(overdue_all)
    longest = max([overdue_total, *totals.values()], default=0)
    return {
        "now": local_iso(now, tz),
        "dead_letters": dead_letters,  # notification deliveries given up on (coopflow deliveries --status dead)
        "open_total": sum(g["count"] for g in groups),
        "overdue_total": overdue_total,
        "workflows": clauses,
        "overdue": overdue,
        "parties": parties,
        "page": {"page": offset // limit + 1, "limit": limit, "pages": max(1, -(-longest // limit)),
                 "more": longest > offset + limit},
    }


def _clauses(policy, spec_of, groups, late) -> list[dict[str, Any]]:
    """Per workflow: open and overdue counts, and the same per state (states in the policy's order)."""
    clauses: dict[str, dict[str, Any]] = {}

    def entry(workflow: str, version: str | None = None) -> dict[str, Any]:
        if workflow not in clauses:
            spec = policy.workflows.get(workflow) or spec_of.get(version)
            clauses[workflow] = {"workflow": workflow, "title": spec.title if spec else workflow,
                                 "clause": spec.clause if spec else "", "open": 0, "overdue": 0, "states": {},
                                 "_order": list(spec.states) if spec else []}
        return clauses[workflow]

    for wid in policy.workflows:
        entry(wid)
    for g in groups:
        c = entry(g["workflow"], g["version"])
        c["open"] += g["count"]
        c["states"].setdefault(g["state"], {"open": 0, "overdue": 0})["open"] += g["count"]
    for (workflow, state), n in late.items():
        c = entry(workflow)
        c["overdue"] += n
        c["states"].setdefault(state, {"open": 0, "overdue": 0})["overdue"] += n
    for c in clauses.values():
        order = c.pop("_order")
        spec = policy.workflows.get(c["workflow"])
        c["states"] = [{"state": s, "title": state_title(spec, s), **n}
                       for s, n in sorted(c["states"].items(), key=lambda i: (order.index(i[0]) if i[0] in order else len(order), i[0]))]
    return sorted(clauses.values(), key=lambda c: (clause_key(c["clause"]), c["workflow"]))


def _reason(r: Mapping[str, Any], tz) -> dict[str, Any]:
    if r["why"] == "deadline_passed":
        text = f"deadline {local_text(r['at'], tz)} passed ({r['trigger']} not yet fired)"
    else:
        text = f"{r['trigger']} fired by its deadline at {local_text(r['at'], tz)} ({r['from']} → {r['to']})"
    return {"why": r["why"], "trigger": r["trigger"], "at": local_iso(r["at"], tz), "text": text}


class _Owed:
    """Who owes the next step, decided once per group of alike instances (same workflow version,
    state and party fields) and once per instance only where consents were given."""

    def __init__(self, policy, spec_of, given: Mapping[str, Mapping[str, Any]]):
        self.policy, self.spec_of, self.given = policy, spec_of, given
        self._cache: dict[tuple, dict[str, list[str]]] = {}

    def of(self, row: Mapping[str, Any], consented: Mapping[str, Iterable[str]] | None = None) -> dict[str, list[str]]:
        key = (row["workflow"], row["version"], row["state"], tuple(sorted(row["refs"].items())))
        if consented is None and key in self._cache:
            return self._cache[key]
        spec = self.spec_of.get(row["version"]) or self.policy.workflows.get(row["workflow"])
        owed = next_steps(spec, row["state"], row["refs"], self.policy.config, consented or {}) if spec else {}
        if consented is None:
            self._cache[key] = owed
        return owed

    def count(self, groups: Iterable[Mapping[str, Any]]) -> dict[str, int]:
        """Party -> how many open instances it owes a step on."""
        totals: dict[str, int] = {}
        for g in groups:
            for party in self.of(g):
                totals[party] = totals.get(party, 0) + g["count"]
        for entry in self.given.values():
            done = self.of(entry, entry["given"])
            for party in self.of(entry):
                if party not in done:
                    totals[party] -= 1
        return totals

    def page(self, conn, refs, totals: Mapping[str, int], limit: int, offset: int) -> dict[str, list[dict[str, Any]]]:
        """Party -> its `limit` owed instances after `offset`, longest in their state first; reading
        stops as soon as every party's page is full (or holds all it owes)."""
        want = {p: min(n, offset + limit) for p, n in totals.items() if min(n, offset + limit) > 0}
        seen = dict.fromkeys(want, 0)
        pages: dict[str, list[dict[str, Any]]] = {p: [] for p in want}
        if not want:
            return pages
        with closing(reads.open_in_state_order(conn, refs)) as rows:
            for row in rows:
                entry = self.given.get(row["id"])
                for party, triggers in self.of(row, entry["given"] if entry else None).items():
                    if party not in want or seen[party] >= want[party]:
                        continue
                    if seen[party] >= offset:
                        spec = self.spec_of.get(row["version"]) or self.policy.workflows.get(row["workflow"])
                        pages[party].append({"instance": row["id"], "workflow": row["workflow"], "state": row["state"],
                                             "state_title": state_title(spec, row["state"]), "since": row["since"],
                                             "triggers": triggers})
                    seen[party] += 1
                if all(seen[p] >= want[p] for p in want):
                    break
        return pages


# --------------------------------------------------------------------------- upcoming


def build_upcoming(store, policy, days: int, now: datetime | None = None, limit: int | None = None,
                   offset: int = 0) -> list[dict[str, Any]]:
    """Schedule occurrences, armed deadlines and meetings due within `days` days, by time (one page)."""
    return upcoming_page(store, policy, days, now, limit, offset)["items"]


def upcoming_page(store, policy, days: int, now: datetime | None = None, limit: int | None = None,
                  offset: int = 0, visibility: reads.Visibility | None = None) -> dict[str, Any]:
    """`items`: what falls due within `days` days, by time, `limit` of them after `offset`; `total`: how many in all.
    Of the instances `visibility` allows (None: all; the schedules' occurrences are everyone's), in SQL.

    Deadlines already past but still armed (the daemon has not fired them) are listed too, marked
    overdue. A meeting's own deadline (the one armed in its `meeting.state`) is shown once, as the meeting.
    """
    from engine.scheduling import schedules  # APScheduler's triggers: `coopflow status` does without them

    now = now or clock.now()
    horizon = now + timedelta(days=days)
    tz = policy.tz
    want = None if limit is None else offset + limit
    items: list[tuple[datetime, dict[str, Any]]] = []
    # At most one occurrence per listed month, and listed months are >= 28 days apart.
    for schedule, at, host in schedules.upcoming(store, policy, now, count=days // 28 + 2):
        if at <= horizon:
            items.append((at, {"kind": "schedule", "schedule": schedule.id, "workflow": schedule.start,
                               "title": schedule.title or schedule.id, "clause": schedule.clause, "host": host}))
    meetings = meeting_workflows(policy)
    skip = [(wid, m.state) for wid, m in meetings.items()]
    with store.reading() as conn:
        specs = Specs(conn, policy)
        deadlines = reads.deadline_count(conn, horizon, skip, visibility)
        for t in reads.deadlines_due(conn, horizon, skip, limit=want, visibility=visibility):
            spec = specs.get(t["workflow"], t["version"])
            deadline = spec.states[t["state"]].deadline if spec and t["state"] in spec.states else None
            items.append((t["due_at"], {"kind": "deadline", "workflow": t["workflow"], "instance": t["instance"],
                                        "state": t["state"], "state_title": state_title(spec, t["state"]),
                                        "subject": subject_of(spec, t["fields"]), "trigger": t["trigger"],
                                        "clause": deadline.clause if deadline else None, "overdue": t["due_at"] < now}))
        for wid, meeting in meetings.items():
            spec = policy.workflows[wid]
            with closing(reads.awaited_meetings(conn, wid, meeting.state, visibility)) as rows:
                for row in rows:
                    item = _meeting(spec, meeting, row, horizon)
                    if item is not None:
                        items.append(item)
    items.sort(key=lambda item: (item[0], item[1]["kind"], item[1].get("instance", "")))
    total = len(items) - sum(1 for _, i in items if i["kind"] == "deadline") + deadlines
    page = items[offset:] if want is None else items[offset:want]
    return {"items": [{"at": local_iso(at, tz), **data} for at, data in page], "total": total,
            "offset": offset, "limit": limit, "days": days}


def _meeting(spec: WorkflowSpec, meeting: MeetingSpec, row: Mapping[str, Any], horizon: datetime):
    """(time, item) of one awaited meeting, or None when it falls after `horizon` or has no time at all."""
    fields = row["fields"] or {}
    set_at = _meeting_time(fields.get(meeting.at)) if meeting.at else None
    at = set_at or row["due_at"]
    if at is None or at > horizon:
        return None
    deadline = spec.states[meeting.state].deadline if meeting.state in spec.states else None
    rule = f"{deadline.describe()} after reaching {meeting.state}" if deadline else f"no deadline in {meeting.state}"
    subject = subject_of(spec, fields)
    return at, {"kind": "meeting", "workflow": spec.id, "title": spec.title, "instance": row["id"], "state": row["state"],
                "subject": subject, "issue": subject,  # `issue`: the subject under its former name (calendar, API)
                "meeting_at_set": set_at is not None, "time_rule": None if set_at else rule, "trigger": row["trigger"]}


def _meeting_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else None
