"""The report's figures, read in one pass over the history: streamed in batches, aggregated on the fly.

Nothing here names a workflow, field, state or role of the shipped agreement: what a request,
a meeting or an action item is comes from each workflow's `subject:`, `meeting:` and `report:`
keys (docs/policy.md). The definitions the figures follow are `document.DEFINITIONS`.

Memory stays bounded by the instances still open (and those of the period), never by the
history: each row updates a small per-instance record and is dropped; an instance that ended
before the period is forgotten as soon as it ends.
"""

from __future__ import annotations

import json
import statistics
from array import array
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

from engine import clock
from engine.policy.spec import SYSTEM, WorkflowSpec
from engine.rules import duties
from engine.store import report_rows
from engine.views.overview import clause_key
from engine.views.report.periods import Period


def party_of(actor: str | None) -> str | None:
    if not actor or actor == SYSTEM:
        return None
    return actor.split(".", 1)[0]


def late_working_days(calendar, due: datetime, until: datetime) -> int | None:
    """Working days begun at or after the nominal `due` moment and before `until`; None when `until` is not after `due`."""
    if until <= due:
        return None
    tz = calendar.tz
    day, last, count = due.astimezone(tz).date(), until.astimezone(tz).date(), 0
    while day <= last:
        begins = datetime.combine(day, time(0), tzinfo=tz)
        if due <= begins < until and calendar.is_working_day(day):
            count += 1
        day += timedelta(days=1)
    return count


class Track:
    """What the report remembers of one instance while the history streams past."""

    __slots__ = ("spec", "opener", "opened", "inside", "state", "entered", "owed", "answered", "fields", "ended",
                 "late_from", "held_at", "held_by", "meeting_due", "rule", "last_seq", "move_seq")

    def __init__(self, spec: WorkflowSpec, opener: str | None, opened: datetime, inside: bool, rule: str | None):
        self.spec, self.opener, self.opened, self.inside, self.rule = spec, opener, opened, inside, rule
        self.state: str | None = None
        self.entered = opened
        self.owed: frozenset[str] = frozenset()
        self.answered: set[str] = set()
        self.fields: dict[str, Any] = {}
        self.ended: datetime | None = None
        self.late_from: datetime | None = None
        self.held_at: datetime | None = None
        self.held_by: str | None = None
        self.meeting_due: str | None = None
        self.last_seq = 0
        self.move_seq: int | None = None  # the instance's own move counter after its last move (audit record)


class Tally:
    """Feed it the applied history rows of everything before the period's end, in seq order; read `tracks` etc."""

    def __init__(self, policy, period: Period, stored_versions: dict[str, dict]):
        self.policy, self.config, self.period = policy, policy.config, period
        self.stored = stored_versions
        self.specs: dict[str, WorkflowSpec] = {}
        self.tracks: dict[str, Track] = {}
        self.clauses: dict[str, dict[str, Any]] = {}
        self.responses: dict[str, array] = defaultdict(lambda: array("d"))
        self.worst: dict[str, tuple] = {}
        self.escalations: list[dict[str, Any]] = []
        self.meeting_names: dict[str, str] = {}
        self._owed_cache: dict[tuple, frozenset[str]] = {}
        self._keys: dict[int, tuple[str, ...]] = {}
        self.rule_titles = {r.id: r.title or r.id for r in policy.event_rules}
        self._late: dict[tuple, bool] = {}
        self.start = period.start
        specs = [*policy.workflows.values(), *(self.spec(None, v) for v in stored_versions)]
        self.party_fields = tuple(sorted({n for spec in specs for n in self.names(spec)}))

    # ---- helpers

    def spec(self, workflow: str | None, version: str | None) -> WorkflowSpec | None:
        if version and version in self.stored:
            if version not in self.specs:
                self.specs[version] = WorkflowSpec.from_stored(self.stored[version])
            return self.specs[version]
        return self.policy.workflows.get(workflow)

    def clause(self, spec: WorkflowSpec) -> dict[str, Any]:
        entry = self.clauses.get(spec.id)
        if entry is None:
            entry = self.clauses[spec.id] = {"workflow": spec.id, "title": spec.title, "clause": spec.clause, "opened": 0,
                                             "closed": 0, "overdue": 0, "escalated": 0, "referred": 0}
        return entry

    def owed(self, spec: WorkflowSpec, state: str, fields: dict[str, Any]) -> frozenset[str]:
        """The parties owing the next step from `state` (cached by the fields the role patterns read)."""
        names = self._keys.get(id(spec)) or self.names(spec)
        key = (id(spec), state, tuple(fields.get(n) for n in names))
        found = self._owed_cache.get(key)
        if found is None:
            found = self._owed_cache[key] = frozenset(duties.owed(spec, state, fields, self.config))
        return found

    def names(self, spec: WorkflowSpec) -> tuple[str, ...]:
        """The fields the role patterns of `spec` read (`$field.role`)."""
        names = self._keys.get(id(spec))
        if names is None:
            names = self._keys[id(spec)] = tuple(sorted({p.rpartition(".")[0][1:] for t in spec.transitions for p in t.by
                                                         if p.startswith("$")}))
        return names

    def keeps_fields(self, t: Track) -> bool:
        return t.inside or t.spec.meeting is not None or (t.spec.report is not None and t.spec.report.action is not None)

    # ---- one row

    def lateness(self, spec: WorkflowSpec, index, trigger: str | None, from_state: str | None) -> bool:
        """Is this deadline-fired move a lateness transition (engine.rules.duties.late_transition), cached?"""
        key = (id(spec), index, trigger, from_state)
        found = self._late.get(key)
        if found is None:
            found = self._late[key] = duties.late_transition(spec, index, trigger, from_state)
        return found

    def add(self, seq: int, iid: str, at, kind: str, workflow: str | None, trigger: str | None, from_state: str | None,
            to_state: str | None, actor: str | None, extra) -> None:
        """One applied row; `extra` is [timer, transition, rule, due_at, version, armed due_at, audit seq, *party fields]."""
        if at.__class__ is str:
            at = datetime.fromisoformat(at).replace(tzinfo=UTC)  # SQLite's text, read without SQLAlchemy's parsing
        if extra.__class__ is str:
            extra = json.loads(extra)
        inside = at >= self.start
        t = self.tracks.get(iid)
        if kind == "start":
            spec = self.spec(workflow, extra[4])
            if spec is None:
                return
            t = self.tracks[iid] = Track(spec, party_of(actor), at, inside, extra[2])
        elif t is None:
            return  # ended before the period (forgotten), or a row of an instance the policy no longer knows
        if kind != "start" and t.owed:
            party = party_of(actor)
            if party in t.owed and party != t.opener and party not in t.answered and kind in ("fire", "consent"):
                t.answered.add(party)
                if inside:
                    seconds = (at - t.entered).total_seconds()
                    self.responses[party].append(seconds)
                    if party not in self.worst or seconds > self.worst[party][0]:
                        self.worst[party] = (seconds, iid, t.spec.id, t.state)
        if to_state is None or (kind != "fire" and kind != "start"):
            return
        spec, report = t.spec, t.spec.report
        t.last_seq, t.move_seq = seq, extra[6]
        if extra[6] is not None:  # the row's audit record holds the fields after the move (older rows keep the last known)
            t.fields = dict(zip(self.party_fields, extra[7:], strict=False))
        st = spec.states.get(to_state)
        final = st is not None and st.final
        entry = self.clause(spec)
        rule = extra[2]
        if kind == "start":
            if inside:
                entry["opened"] += 1
                if rule:
                    self.escalation(at, "rule", spec, iid, None, rule, None, to_state)
        else:
            late = False
            if extra[0]:
                late = self.lateness(spec, extra[1], trigger, from_state)
            if inside:
                entry["closed"] += final
                if late:
                    entry["overdue"] += 1
                    self.escalation(at, "deadline", spec, iid, trigger, None, from_state, to_state)
                elif rule:
                    self.escalation(at, "rule", spec, iid, trigger, rule, from_state, to_state)
                elif report is not None and (to_state in report.escalated or to_state in report.referred):
                    self.escalation(at, "person", spec, iid, trigger, None, from_state, to_state)
            marks_late = to_state in report.overdue if report is not None and report.overdue else late
            if marks_late and t.late_from is None:
                t.late_from = datetime.fromisoformat(extra[3]) if extra[3] else at
        if inside and report is not None:
            entry["escalated"] += to_state in report.escalated
            entry["referred"] += to_state in report.referred
        meeting = spec.meeting
        if meeting is not None:
            if to_state in meeting.held and actor != SYSTEM and t.held_at is None:
                t.held_at, t.held_by = at, actor
            if to_state == meeting.state:
                t.meeting_due = extra[5]
        t.state, t.entered, t.answered = to_state, at, set()
        t.owed = self.owed(spec, to_state, t.fields)
        if final:
            t.ended = at
            if not inside:
                del self.tracks[iid]  # over before the period: nothing of it is reported

    def escalation(self, at: datetime, kind: str, spec: WorkflowSpec, iid: str, trigger: str | None, rule: str | None,
                   from_state: str | None, to_state: str) -> None:
        report = spec.report
        level = ("referred" if report and to_state in report.referred else "escalated" if report and to_state in report.escalated
                 else "overdue" if kind == "deadline" else None)
        st = spec.states.get(to_state)
        self.escalations.append({"at": at.astimezone(self.policy.tz).isoformat(), "kind": kind, "level": level,
                                 "workflow": spec.id, "workflow_title": spec.title, "instance": iid, "trigger": trigger,
                                 "trigger_title": _trigger_title(spec, trigger), "rule": rule,
                                 "rule_title": self.rule_titles.get(rule, rule) if rule else None, "from": from_state,
                                 "to": to_state, "to_title": st.title if st else to_state})


def _trigger_title(spec: WorkflowSpec, trigger: str | None) -> str | None:
    return next((t.title or t.trigger for t in spec.transitions if t.trigger == trigger), trigger) if trigger else None


def stream(store, policy, period: Period) -> tuple[Tally, dict[str, Any] | None]:
    """Every applied history row before the period's end through a `Tally` (engine.store.report_rows: batched, the
    database extracting each row's few values, instances over before the period skipped), then the listed instances'
    fields, and the audit anchor at the period's end."""
    with store.reading() as conn:
        stored = report_rows.stored_versions(conn)
        tally = Tally(policy, period, stored)
        specs = [*policy.workflows.values(), *(tally.spec(None, v) for v in stored)]
        finals = {(spec.id, sid) for spec in specs for sid, st in spec.states.items() if st.final}
        add = tally.add
        for row in report_rows.applied_rows(conn, period.start, period.end, finals, tally.party_fields):
            add(*row)
        _fill_fields(conn, tally)
        head = report_rows.head_before(conn, period.end)
    anchor = None if head is None else {"seq": head.seq, "hash": head.hash, "at": head.at.astimezone(policy.tz).isoformat()}
    return tally, anchor


def _fill_fields(conn, tally: Tally) -> None:
    """The fields as of the period's end of every instance the report lists: the instance's own (stored) fields when it
    has not moved since, else its last move's audit record in the history."""
    wanted = {iid: t for iid, t in tally.tracks.items() if tally.keeps_fields(t) or (t.ended is None and t.late_from)}
    current = set()
    for iid, _workflow, seq, values in report_rows.instance_fields(conn, sorted(wanted)):
        t = wanted[iid]
        if t.move_seq is None or seq == t.move_seq:
            t.fields = values or {}
            current.add(iid)
    later = {t.last_seq: t for iid, t in wanted.items() if iid not in current}  # moved since: the history has the fields
    for seq, values in report_rows.audit_fields(conn, sorted(later)):
        if isinstance(values, dict):
            later[seq].fields = values
    for iid, t in tally.tracks.items():
        if t.spec.meeting is not None and t.spec.subject:
            tally.meeting_names[iid] = str(t.fields.get(t.spec.subject) or "")
    named = sorted({str(t.fields.get(t.spec.report.action.meeting)) for t in tally.tracks.values()
                    if t.spec.report is not None and t.spec.report.action is not None} - set(tally.meeting_names))
    for iid, workflow, _seq, values in report_rows.instance_fields(conn, named):  # meetings over before the period
        spec = tally.policy.workflows.get(workflow)
        tally.meeting_names[iid] = str((values or {}).get(spec.subject) or "") if spec is not None and spec.subject else ""


class ReportData(dict):
    """The figures as plain JSON-ready data; `templates` (not part of the data) is where its HTML templates are."""

    templates: Path | None = None


def build(store, policy, period: Period, now: datetime | None = None) -> ReportData:
    """Every figure of the report as plain data (the Markdown, HTML, PDF and Word writers only format it)."""
    tally, anchor = stream(store, policy, period)
    return assemble(policy, period, tally, anchor, now or clock.now())


def assemble(policy, period: Period, tally: Tally, anchor: dict[str, Any] | None, now: datetime) -> ReportData:
    """The figures from a tally of the history (an empty `Tally` gives a report with no events, e.g. for `check`)."""
    tz, config, calendar = policy.tz, policy.config, policy.calendar
    until = min(period.end, now)
    for spec in policy.workflows.values():
        tally.clause(spec)

    def local(moment: datetime | None) -> str | None:
        return moment.astimezone(tz).isoformat() if moment else None

    def title_of(spec: WorkflowSpec, state: str | None) -> str | None:
        st = spec.states.get(state) if state else None
        return st.title if st else state

    def lateness(t: Track) -> int | None:
        if t.late_from is None:
            return None
        return late_working_days(calendar, t.late_from, t.ended or until)

    for c in tally.clauses.values():
        c.update(requests=[], open=0, open_late=0)
    remaining, meetings, actions = [], [], []
    for iid, t in sorted(tally.tracks.items(), key=lambda item: (item[1].opened, item[0])):
        spec, report = t.spec, t.spec.report
        entry = tally.clauses[spec.id]
        late = lateness(t)
        subject = t.fields.get(spec.subject) if spec.subject else None
        if t.ended is None:
            entry["open"] += 1
            entry["open_late"] += t.late_from is not None
            if t.late_from is not None:
                remaining.append({"instance": iid, "workflow": spec.id, "workflow_title": spec.title, "subject": subject,
                                  "state_title": title_of(spec, t.state), "late_days": late, "since": local(t.late_from)})
        if t.inside:
            entry["requests"].append({
                "instance": iid, "subject": subject, "state": t.state, "state_title": title_of(spec, t.state),
                "opened_at": local(t.opened), "closed_at": local(t.ended),
                "dispatch": [str(t.fields[f]) for f in (report.dispatch if report else []) if t.fields.get(f)],
                "answer": t.fields.get(report.answer) if report and report.answer else None,
                "late_days": late, "due_at": local(t.late_from)})
        if spec.meeting is not None and (t.inside or (t.held_at and t.held_at >= period.start)
                                          or (t.ended and t.ended >= period.start)):
            at = t.fields.get(spec.meeting.at) if spec.meeting.at else None
            meetings.append({
                "instance": iid, "workflow": spec.id, "workflow_title": spec.title, "subject": subject,
                "opened_by": t.opener, "rule": t.rule, "opened_at": local(t.opened), "meeting_at": at or t.meeting_due,
                "held": t.held_at is not None, "held_at": local(t.held_at), "held_by": t.held_by,
                "conclusions": t.fields.get(report.conclusions) if report and report.conclusions else None,
                "state": t.state, "state_title": title_of(spec, t.state), "final": t.ended is not None,
                "outcome": title_of(spec, t.state) if t.ended is not None else None, "ended_at": local(t.ended)})
        if report is not None and report.action is not None:
            actions.append(_action(t, iid, report.action, tally, calendar, until, local, title_of))
    parties = _parties(tally, config)
    issuers = [{"party": pid, "title": party.title, "short": party.short or pid,
                "signer": _signer(party, config.agreement)} for pid, party in list(config.parties.items())[:2]]
    workflows = sorted(tally.clauses.values(), key=lambda c: (clause_key(c["clause"]), c["workflow"]))
    data = ReportData({
        "agreement": config.agreement.title, "period": period.label, "period_title": period.title,
        "start": period.start.isoformat(), "end": period.end.isoformat(), "timezone": tz.key,
        "generated_at": now.astimezone(tz).isoformat(), "complete": now >= period.end,
        "workflows": workflows,
        "totals": {k: sum(c[k] for c in workflows) for k in ("opened", "closed", "overdue", "escalated", "referred", "open")},
        "parties": parties, "meetings": meetings, "actions": actions, "escalations": tally.escalations,
        "remaining": remaining, "anchor": anchor,
        "issuers": issuers, "copies": [p.title for pid, p in list(config.parties.items())[2:]],
        "place": config.agreement.place or province(config.agreement.title),
    })
    data.templates = policy.root / config.paths.report_templates
    return data


def _action(t: Track, iid: str, action, tally: Tally, calendar, until: datetime, local, title_of) -> dict[str, Any]:
    """One action item as of the period's end: done (on time or late), late, open or closed otherwise."""
    due_text = t.fields.get(action.due)
    due = datetime.fromisoformat(due_text) if due_text else None
    done = t.state in action.done
    if done:
        if due and t.ended and t.ended > due:
            status, late = "done_late", late_working_days(calendar, due, t.ended)
        else:
            status, late = "done", None
    elif t.ended is not None:
        status, late = "closed", None
    elif (due and due < until) or t.late_from is not None:
        status = "late"
        since = due or t.late_from
        late = late_working_days(calendar, since, until) if since is not None else None  # (one of them is set)
    else:
        status, late = "open", None
    meeting = t.fields.get(action.meeting)
    return {"instance": iid, "subject": t.fields.get(t.spec.subject) if t.spec.subject else None,
            "party": t.fields.get(action.party), "due": due_text, "status": status, "late_days": late,
            "meeting": meeting, "meeting_subject": tally.meeting_names.get(str(meeting)) if meeting else None,
            "state_title": title_of(t.spec, t.state), "done_at": local(t.ended) if done else None}


def _parties(tally: Tally, config) -> list[dict[str, Any]]:
    out = []
    for pid in list(config.parties) + sorted(set(tally.responses) - set(config.parties)):
        seconds: Sequence[float] = tally.responses.get(pid, [])
        worst = tally.worst.get(pid)
        party = config.parties.get(pid)
        spec = tally.policy.workflows.get(worst[2]) if worst else None
        out.append({
            "party": pid, "title": party.title if party else pid, "short": (party.short or pid) if party else pid,
            "responses": len(seconds), "median_seconds": statistics.median(seconds) if len(seconds) else None,
            "worst_seconds": worst[0] if worst else None, "worst_instance": worst[1] if worst else None,
            "worst_state": worst[3] if worst else None,
            "worst_state_title": (spec.states[worst[3]].title if spec and worst[3] in spec.states else worst[3]) if worst else None,
        })
    return out


def _signer(party, agreement) -> str | None:
    role = party.roles.get(agreement.signer) if agreement.signer else None
    return role.title if role is not None and role.title else None


def province(title: str) -> str | None:
    """'… Công an tỉnh Lào Cai trong công tác …' -> 'Lào Cai' (the capitalised words after the last 'tỉnh' / 'thành phố')."""
    import re

    found = re.findall(r"(?:tỉnh|thành phố)\s+((?:[A-ZĐÀ-Ỹ][\wÀ-ỹ]*)(?:\s+[A-ZĐÀ-Ỹ][\wÀ-ỹ]*)*)", " ".join(title.split()))
    return found[-1] if found else None
