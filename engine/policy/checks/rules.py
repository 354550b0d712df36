"""The rules files' checks beyond their shape: schedules (their workflow, actor, host rotation
and values) and event rules (an event some workflow emits, the workflow they start or fire)."""

from __future__ import annotations

from typing import Any

from engine.policy.cache import emits_of
from engine.policy.checks.base import Checker
from engine.policy.spec import SYSTEM, ScheduleSpec
from engine.policy.yamlsource import DocumentLike
from engine.rules import actors
from engine.rules.workcalendar import WorkCalendar

# Roots an expression may name, per place it appears.
EVENT_ATTRS = None  # events carry free-form data
OCCURRENCE_ATTRS = frozenset({"year", "month", "half", "period", "date", "at", "host", "index"})


class RuleChecks(Checker):
    """Schedules and event rules, checked against the workflows (and the calendar, once it is valid)."""

    def check_schedule(self, doc, i, sched: ScheduleSpec, config, workflows) -> None:
        loc = ("schedules", i)
        target = self.find_workflow(doc, loc + ("start",), sched.start, workflows)
        if target is None:
            return
        if sched.actor != SYSTEM:
            try:
                actors.parse_actor(sched.actor, config)
            except Exception as exc:  # CoopflowError: user text
                self.report(doc, loc + ("as",), str(exc))
        given = set(sched.with_)
        if sched.host:
            self.check_rotation(doc, loc + ("host",), sched.host, config)
            hfield = target.fields.get(sched.host.field)
            if hfield is None or hfield.type != "party":
                self.report(doc, loc + ("host", "field"), f"workflow '{target.id}' has no party field '{sched.host.field}' to hold the host")
            given.add(sched.host.field)
        self.check_values(doc, loc + ("with",), sched.with_, target, config, {"occurrence": OCCURRENCE_ATTRS})
        self.check_required(doc, loc + ("start",), target, given, sched.actor)

    def check_dates(self, doc: DocumentLike, i: int, sched: ScheduleSpec, calendar: WorkCalendar) -> None:
        """A warning, not an error, for each explicit `dates:` entry that is not a working day of the
        agreement's calendar (weekend, public holiday, a day off in calendar.overrides): the
        schedule does fall on it, which is seldom what the agreement means."""
        loc = ("schedules", i, "every", "dates")
        written = _listed(doc.data, loc)  # the validator sorts the dates: place each at its own line
        for day in sched.every.dates or ():
            if calendar.is_working_day(day):
                continue
            why = calendar.holiday_name(day) or (f"a {day:%A}, weekend" if day.weekday() in calendar.weekend else "a day off")
            at = loc + (written.index(day),) if day in written else loc
            self.warn(doc, at, f"{day} is not a working day ({why}); the schedule '{sched.id}' still falls on it: "
                      "check the date, or list it under calendar.overrides work if it is worked")

    def check_rotation(self, doc, loc, rotation, config) -> None:
        known = ', '.join(sorted(config.parties))
        eras = [((), rotation.rotate, rotation.first)] + [(("changes", k), c.rotate or [], c.first) for k, c in enumerate(rotation.changes)]
        for where, order, first in eras:
            for j, party in enumerate(order):
                if party not in config.parties:
                    self.report(doc, loc + where + ("rotate", j), f"unknown party '{party}'; known: {known}")
            if first is not None and first not in config.parties:
                self.report(doc, loc + where + ("first",), f"unknown party '{first}'; known: {known}")
        for k, change in enumerate(rotation.changes):
            order = change.rotate or rotation.rotate
            if change.rotate is None and change.first is not None and change.first not in order:
                self.report(doc, loc + ("changes", k, "first"), f"first host '{change.first}' is not in rotate ({', '.join(order)})")

    def check_event_rule(self, doc, i, rule, config, workflows) -> None:
        loc = ("events", i)
        allowed = {"event": EVENT_ATTRS}
        if self.emitted is None:
            self.emitted = set().union(*(emits_of(w) for w in workflows.values()))
        emitted = self.emitted
        if rule.on not in emitted | self.broken_emits and not self.workflows_unread:  # a broken workflow file may emit it
            self.report(doc, loc + ("on",), f"no workflow emits '{rule.on}'; emitted events: {', '.join(sorted(emitted)) or 'none'}")
        if rule.when:
            self.compile(doc, loc + ("when",), rule.when, allowed)
        if rule.start:
            target = self.find_workflow(doc, loc + ("start", "workflow"), rule.start.workflow, workflows)
            if target is None:
                return
            self.check_values(doc, loc + ("start", "with"), rule.start.with_, target, config, allowed)
            self.check_required(doc, loc + ("start", "workflow"), target, set(rule.start.with_))
        else:
            target = self.find_workflow(doc, loc + ("fire", "workflow"), rule.fire.workflow, workflows)
            if target is None:
                return
            fires = [t for t in target.transitions if t.trigger == rule.fire.trigger]
            if not fires:
                self.report(doc, loc + ("fire", "trigger"), f"workflow '{target.id}' has no trigger '{rule.fire.trigger}'")
            elif not any(SYSTEM in t.by for t in fires):
                self.report(doc, loc + ("fire", "trigger"), f"trigger '{rule.fire.trigger}' of '{target.id}' does not list 'system' in 'by'")
            self.compile(doc, loc + ("fire", "instance"), rule.fire.instance.lstrip("=").strip(), allowed)


def _listed(data: Any, loc: tuple) -> list:
    """The list at `loc` in a file's data, as written (empty when it is not there)."""
    for key in loc:
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data):
            data = data[key]
        else:
            return []
    return data if isinstance(data, list) else []
