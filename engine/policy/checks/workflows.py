"""A workflow's checks beyond its shape: states and transitions, role patterns, guards and
actions, deadlines and reminders, approvals, and what the views and the report read."""

from __future__ import annotations

from collections.abc import Mapping

from engine.notify import checks as notify_checks
from engine.policy.cache import CachedSpec
from engine.policy.checks.base import Checker
from engine.policy.spec import (
    ANY_STATE,
    SYSTEM,
    ConfigSpec,
    EmitAction,
    NotifyAction,
    PartiesFrom,
    SetAction,
    StartAction,
    WorkflowSpec,
)
from engine.policy.yamlsource import DocumentLike

# Roots a guard or action value may name, beside the workflow's own fields.
INSTANCE_ATTRS = frozenset({"id", "workflow", "state"})
ACTOR_ATTRS = frozenset({"party", "role", "person", "id"})


class WorkflowChecks(Checker):
    def check_workflow(
        self, doc: DocumentLike, spec: WorkflowSpec, config: ConfigSpec, workflows: Mapping[str, WorkflowSpec | CachedSpec]
    ) -> None:
        states = spec.states
        party_fields = {n for n, f in spec.fields.items() if f.type == "party"}
        allowed = {
            "fields": frozenset(spec.fields),
            "given": frozenset(spec.fields),  # the values supplied with the event (engine.rules.decision)
            "actor": ACTOR_ATTRS,
            "instance": INSTANCE_ATTRS,
            "now": frozenset(),
        }
        if spec.initial not in states:
            self.report(doc, ("initial",), f"initial state '{spec.initial}' is not declared; states: {', '.join(states)}")
        for i, pattern in enumerate(spec.started_by):
            self.check_pattern(doc, ("started_by", i), pattern, config, party_fields)
        outgoing: dict[str, set[str]] = {s: set() for s in states}
        for i, t in enumerate(spec.transitions):
            here = ("transitions", i)
            for j, src in enumerate(t.sources):
                if src == ANY_STATE:
                    continue
                where = here + ("from",) + ((j,) if isinstance(t.source, list) else ())
                if src not in states:
                    self.report(doc, where, f"unknown state '{src}'; states: {', '.join(states)}")
                elif states[src].final:
                    self.report(doc, where, f"state '{src}' is final: no transition may leave it")
            if t.dest not in states:
                self.report(doc, here + ("to",), f"unknown state '{t.dest}'; states: {', '.join(states)}")
            for src in spec.sources_of(t):
                outgoing[src].add(t.dest)
            for j, pattern in enumerate(t.by):
                self.check_pattern(doc, here + ("by", j), pattern, config, party_fields)
            for key in ("require", "accepts"):
                for j, name in enumerate(getattr(t, key)):
                    if name not in spec.fields:
                        self.report(doc, here + (key, j), f"unknown field '{name}'; fields: {', '.join(spec.fields) or 'none'}")
            if t.when:
                self.compile(doc, here + ("when",), t.when, allowed)
            if t.approvals:
                self.check_approvals(doc, here + ("approvals",), t, config, spec)
            for j, action in enumerate(t.then):
                self.check_action(doc, here + ("then", j), action, spec, config, workflows, allowed)
        self.check_duplicate_triggers(doc, spec)
        self.check_views(doc, spec)
        for sid, state in states.items():
            if state.deadline:
                self.check_deadline(doc, sid, spec, config)
            if not state.final and not outgoing.get(sid):
                self.report(doc, ("states", sid, "__key__"), f"state '{sid}' is not final but no transition leaves it")
        if spec.initial in states:
            seen, todo = {spec.initial}, [spec.initial]
            while todo:
                for nxt in outgoing.get(todo.pop(), ()):
                    if nxt in states and nxt not in seen:
                        seen.add(nxt)
                        todo.append(nxt)
            for sid in states:
                if sid not in seen:
                    self.report(doc, ("states", sid, "__key__"), f"state '{sid}' cannot be reached from '{spec.initial}'")

    def check_duplicate_triggers(self, doc: DocumentLike, spec: WorkflowSpec) -> None:
        seen: dict[tuple[str, str], int] = {}
        for i, t in enumerate(spec.transitions):
            for src in spec.sources_of(t):
                key = (t.trigger, src)
                if key in seen and not (t.when and spec.transitions[seen[key]].when):
                    self.report(
                        doc, ("transitions", i, "trigger"),
                        f"trigger '{t.trigger}' from '{src}' is already defined by transition {seen[key] + 1}; "
                        "give both a 'when' guard to choose between them",
                    )
                seen.setdefault(key, i)

    def check_views(self, doc: DocumentLike, spec: WorkflowSpec) -> None:
        """`subject:` and `meeting:` name fields and states of this workflow."""
        if spec.subject is not None and spec.subject not in spec.fields:
            self.report(doc, ("subject",), f"'subject' must name a field of this workflow, not '{spec.subject}'")
        meeting = spec.meeting
        if spec.report is not None:
            self.check_report(doc, spec)
        if meeting is None:
            return
        for loc, sid in [(("meeting", "state"), meeting.state)] + [(("meeting", "held", j), s) for j, s in enumerate(meeting.held)]:
            if sid not in spec.states:
                self.report(doc, loc, f"unknown state '{sid}'; states: {', '.join(spec.states)}")
        if meeting.at is not None and getattr(spec.fields.get(meeting.at), "type", None) != "datetime":
            self.report(doc, ("meeting", "at"), f"'at' must name a datetime field of this workflow, not '{meeting.at}'")
        if meeting.at is None and meeting.state in spec.states and spec.states[meeting.state].deadline is None:
            self.report(doc, ("meeting",), f"give 'at' (a datetime field) or a deadline on state '{meeting.state}': "
                        "otherwise the meeting has no time")

    def check_report(self, doc: DocumentLike, spec: WorkflowSpec) -> None:
        """`report:` names fields and states of this workflow, of the right types."""
        report = spec.report
        if report is None:  # check_views calls this only for a workflow with `report:`
            return
        action = report.action
        # (loc, field named, the type it must have if any), (loc, state named)
        fields: list[tuple[tuple, str | None, str | None]] = [
            (("report", "dispatch", j), f, None) for j, f in enumerate(report.dispatch)]
        fields += [(("report", key), getattr(report, key), None) for key in ("answer", "conclusions")]
        states: list[tuple[tuple, str]] = [
            (("report", key, j), s) for key in ("overdue", "escalated", "referred") for j, s in enumerate(getattr(report, key))]
        if action is not None:
            fields += [(("report", "action", "meeting"), action.meeting, None), (("report", "action", "party"), action.party, "party"),
                       (("report", "action", "due"), action.due, "datetime")]
            states += [(("report", "action", "done", j), s) for j, s in enumerate(action.done)]
            if not action.done:
                self.report(doc, ("report", "action", "done"), "name at least one state meaning the item was carried out")
        for loc, name, kind in fields:
            if name is None:
                continue
            if name not in spec.fields:
                self.report(doc, loc, f"unknown field '{name}'; fields: {', '.join(spec.fields) or 'none'}")
            elif kind is not None and spec.fields[name].type != kind:
                self.report(doc, loc, f"'{name}' must be a {kind} field, not {spec.fields[name].type}")
        for loc, sid in states:
            if sid not in spec.states:
                self.report(doc, loc, f"unknown state '{sid}'; states: {', '.join(spec.states)}")

    def check_deadline(self, doc: DocumentLike, sid: str, spec: WorkflowSpec, config: ConfigSpec | None = None) -> None:
        deadline = spec.states[sid].deadline
        if deadline is None:  # check_workflow calls this only for a state with a deadline
            return
        loc = ("states", sid, "deadline")
        fires = [t for t in spec.transitions if t.trigger == deadline.fire and spec.leaves(t, sid)]
        if not fires:
            self.report(doc, loc + ("fire",), f"deadline fires '{deadline.fire}' but no transition with that trigger leaves '{sid}'")
        elif not any(SYSTEM in t.by for t in fires):
            self.report(doc, loc + ("fire",), f"deadline fires '{deadline.fire}' but that transition does not list 'system' in 'by'")
        if deadline.at is not None:
            fspec = spec.fields.get(deadline.at)
            if fspec is None or fspec.type != "datetime":
                self.report(doc, loc + ("at",), f"'at' must name a datetime field of this workflow, not '{deadline.at}'")
        if deadline.remind is not None:
            self.check_remind(doc, loc + ("remind",), sid, spec, config)

    def check_remind(self, doc: DocumentLike, loc: tuple, sid: str, spec: WorkflowSpec, config: ConfigSpec | None) -> None:
        """`remind:` spans are shorter than their deadline, and reach someone who owes a step from the state."""
        deadline = spec.states[sid].deadline
        remind = deadline.remind if deadline is not None else None
        if deadline is None or remind is None:  # check_deadline calls this only for a deadline with `remind:`
            return
        spans = remind if isinstance(remind, list) else [remind]
        for j, span in enumerate(spans):
            here = loc + ((j,) if isinstance(remind, list) else ())
            unit = next(k for k in ("working_days", "days", "hours") if getattr(span, k) is not None)
            if getattr(span, unit) == 0:
                self.report(doc, here, "a reminder 0 days before the deadline is the deadline itself: give at least 1")
            elif deadline.at is None and getattr(deadline, unit) is not None and getattr(span, unit) >= getattr(deadline, unit):
                self.report(doc, here, f"remind {span.describe()} before a deadline of {deadline.describe()}: "
                            "a reminder comes during the deadline, so make it shorter than the deadline")
        patterns = [p for t in spec.transitions if spec.leaves(t, sid) for p in t.by if p != SYSTEM]
        if not patterns:
            self.report(doc, loc, f"only the system may act in state '{sid}', so nobody owes a step to be reminded of")
        if config is None:
            return
        missing = list(dict.fromkeys(m for p in patterns for m in notify_checks.unreachable(p, config)))
        if missing:
            self.report(doc, loc, f"the reminder goes to those who may act in '{sid}', but {', '.join(missing)} cannot be "
                        "reached: add an address under notifications.contacts (or a webhook for the party)")

    def check_approvals(self, doc: DocumentLike, loc: tuple, t, config: ConfigSpec, spec: WorkflowSpec) -> None:
        approvals, chosen = t.approvals, t.approvals.parties
        known = ', '.join(sorted(config.parties))
        listed, where = (chosen, ("parties",)) if isinstance(chosen, list) else (
            (chosen.among or [], ("parties", "among")) if isinstance(chosen, PartiesFrom) else ([], ()))
        for j, party in enumerate(listed):
            if party not in config.parties:
                self.report(doc, loc + where + (j,), f"unknown party '{party}'; known: {known}")
        if isinstance(chosen, PartiesFrom):
            for key, name, types in (("in", chosen.in_, ("party", "list")), ("others_than", chosen.others_than, ("party",))):
                if name is not None and (name not in spec.fields or spec.fields[name].type not in types):
                    self.report(doc, loc + ("parties", key), f"'{name}' is not a {' or '.join(types)} field of workflow "
                                f"'{spec.id}'; fields: {', '.join(spec.fields) or 'none'}")
        # The most parties that may consent (a field listing parties: counted when consent is given).
        most = (None if isinstance(chosen, PartiesFrom) and chosen.in_ else
                len(config.parties) if chosen == "all" else len(listed or config.parties) - bool(
                    isinstance(chosen, PartiesFrom) and chosen.others_than))
        if most is not None and approvals.quorum is not None and approvals.quorum > most:
            self.report(doc, loc + ("quorum",), f"quorum {approvals.quorum} is more than the {most} parties that may consent")
        if SYSTEM in t.by:
            self.report(doc, loc, "a transition fired by 'system' cannot need approvals")

    def check_action(self, doc, loc, action, spec, config, workflows, allowed) -> None:
        if isinstance(action, EmitAction):
            for key, value in action.data.items():
                self.compile_value(doc, loc + ("data", key), value, allowed)
        elif isinstance(action, SetAction):
            self.check_values(doc, loc + ("set",), action.set, spec, config, allowed)
        elif isinstance(action, StartAction):
            target = self.find_workflow(doc, loc + ("start",), action.start, workflows)
            if target is None:
                return
            self.check_values(doc, loc + ("with",), action.with_, target, config, allowed)
            self.check_required(doc, loc + ("start",), target, set(action.with_))
        elif isinstance(action, NotifyAction):
            party_fields = {n for n, f in spec.fields.items() if f.type == "party"}
            for j, pattern in enumerate(action.notify):
                self.check_pattern(doc, loc + ("notify", j), pattern, config, party_fields)
                if missing := notify_checks.unreachable(pattern, config):
                    self.report(doc, loc + ("notify", j), f"'{pattern}' names {', '.join(missing)}, who cannot be reached: "
                                "add an address under notifications.contacts (or a webhook for the party)")
            self.compile_value(doc, loc + ("message",), action.message, allowed)
