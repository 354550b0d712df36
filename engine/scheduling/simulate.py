"""The simulator: run a policy against a virtual clock, in a throwaway store, and list what happens.

It uses the daemon's own parts — the same calendar triggers, schedule occurrences, deadline
timers, executor and event rules — and only replaces the clock: instead of waiting, it jumps to
the next instant at which something is due (a schedule occurrence, a deadline, a scripted
event), fires it, and applies everything that follows. The real store is never opened.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine import clock
from engine.exceptions import CoopflowError, PolicyError, UserError
from engine.execution.executor import Executor, Outcome
from engine.execution.runtime import Runtime
from engine.notify import deliveries, digest
from engine.policy.loader import Policy
from engine.policy.yamlsource import load_document
from engine.scheduling import alarms, schedules
from engine.store.database import SqlStore
from engine.views.report import MAX_YEAR, MIN_YEAR

MAX_STEPS = 200_000
SCALARS = (str, int, float, bool, type(None))


class ScriptedEvent(BaseModel):
    """One line of an --events file: start a workflow or fire a trigger, at a time, as an actor.

    Strict: no type is converted (a number is not a string, "yes" is not true), except `at`, which
    may also be an ISO 8601 string (JSON has no dates). `set` values are plain scalars or lists of them.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True, allow_inf_nan=False)

    at: datetime | date
    actor: str = Field(alias="as")
    start: str | None = None
    fire: str | None = None
    instance: str | None = None
    ref: str | None = None
    set: dict[str, Any] = {}
    withdraw: bool = False

    @field_validator("at", mode="before")
    @classmethod
    def _at(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value) if len(value) > 10 else date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a date (YYYY-MM-DD) or ISO 8601 date-time") from None
        if not isinstance(value, date):
            raise ValueError("expected a date (YYYY-MM-DD) or ISO 8601 date-time")
        if not MIN_YEAR <= value.year <= MAX_YEAR:
            raise ValueError(f"the year must be between {MIN_YEAR} and {MAX_YEAR}")
        return value

    @field_validator("set")
    @classmethod
    def _plain_values(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name, item in value.items():
            if isinstance(item, date):
                raise ValueError(f"{name}: put dates and times in quotes (\"{item.isoformat()}\")")
            if not all(isinstance(v, SCALARS) for v in (item if isinstance(item, list) else [item])):
                raise ValueError(f"{name}: expected text, a number, true/false, null or a list of those")
            if any(isinstance(v, float) and not math.isfinite(v) for v in (item if isinstance(item, list) else [item])):
                raise ValueError(f"{name}: numbers must be finite")
        return value

    @model_validator(mode="after")
    def _one(self) -> ScriptedEvent:
        if (self.start is None) == (self.fire is None):
            raise ValueError("give exactly one of start (a workflow) or fire (a trigger)")
        if self.fire is not None and not self.instance:
            raise ValueError("fire needs instance (an instance id, or the ref of a scripted start)")
        return self


@dataclass
class Entry:
    """One line of the timeline."""

    at: str
    kind: str
    workflow: str | None
    instance: str
    trigger: str | None
    outcome: str
    detail: str
    host: str | None = None
    actor: str | None = None
    from_state: str | None = None
    to_state: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        data = {"at": self.at, "kind": self.kind, "workflow": self.workflow, "instance": self.instance,
                "trigger": self.trigger, "outcome": self.outcome, "detail": self.detail, "actor": self.actor,
                "from": self.from_state, "to": self.to_state}
        if self.host is not None:
            data["host"] = self.host
        return {**data, **self.extra}


def load_events(path: str | Path, policy: Policy) -> list[ScriptedEvent]:
    """Read a YAML or JSON list of scripted events, as safely as policy files (engine.policy.yamlsource:
    size, encoding, tabs, tags, alias bombs, impossible dates) and strictly validated.

    Raises PolicyError with every mistake as file:line:col: message.
    """
    doc = load_document(path)
    if not isinstance(doc.data, list):
        raise PolicyError([doc.problem((), "expected a list of events")])
    events, problems = [], []
    for i, item in enumerate(doc.data):
        try:
            events.append(ScriptedEvent.model_validate(item))
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                loc = error["loc"]
                where = ".".join(str(p) for p in loc)
                message = error["msg"].removeprefix("Value error, ")
                problems.append(doc.problem((i, *loc), f"event {i + 1}{' ' + where if where else ''}: {message}"))
    if problems:
        raise PolicyError(list(dict.fromkeys(problems)))
    return sorted(events, key=lambda e: _instant(e.at, policy))


def _instant(value: datetime | date, policy: Policy) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=policy.tz)
    return datetime.combine(value, time(9, 0), tzinfo=policy.tz)


class Simulator:
    """Steps the policy from `start` to `end`; `run()` returns the timeline."""

    def __init__(self, policy: Policy, start: datetime, end: datetime, events: Iterable[ScriptedEvent] = ()):
        self.policy, self.start, self.end = policy, start, end
        self.events = list(events)
        self.refs: dict[str, str] = {}
        self.timeline: list[Entry] = []

    def run(self) -> list[Entry]:
        stepped = clock.SteppedClock(self.start)
        with tempfile.TemporaryDirectory(prefix="coopflow-sim-") as tmp, clock.using(stepped.now):
            store = SqlStore(f"sqlite:///{tmp}/simulation.db", durable=False)
            runtime = Runtime(self.policy, store, Executor(store, self.policy))
            try:
                for sched in self.policy.schedules.values():
                    schedules.since(store, sched.id)  # schedules count from the simulation's start
                self._loop(runtime, stepped)
                self._messages(store)
            finally:
                store.dispose()
        return self.timeline

    def _messages(self, store: SqlStore) -> None:
        """The e-mails and webhooks the simulated notify actions would send (never sent)."""
        for d in deliveries.listing(store):
            subject = d.message["subject"]
            self.timeline.append(Entry(
                at=d.created_at.astimezone(self.policy.tz).isoformat(), kind="message", workflow=None, instance=d.instance or "-",
                trigger=d.channel, outcome=f"would send {d.kind}", detail=f"{d.recipient} <{d.address}>: {subject}",
                extra={"channel": d.channel, "recipient": d.recipient, "address": d.address, "subject": subject,
                       "message": d.kind}))
        self.timeline.sort(key=lambda e: e.at)

    def _loop(self, runtime: Runtime, stepped: clock.SteppedClock) -> None:
        pending = [(_instant(e.at, self.policy), e) for e in self.events]
        for _ in range(MAX_STEPS):
            moment, due = self._next(runtime, pending)
            if moment is None or moment > self.end:
                return
            stepped.set(max(moment, stepped.now()))
            if "schedule" in due:
                schedules.fire_due(runtime.store, self.policy)
            if "deadline" in due:
                alarms.fire_deadlines(runtime.store, self.policy, stepped.now())
            if "digest" in due:
                digest.send_due(runtime.store, self.policy, stepped.now())
            while pending and pending[0][0] <= stepped.now():
                self._submit(runtime, pending.pop(0)[1])
            for outcome in runtime.settle():
                self.timeline.append(self._entry(outcome, stepped.now()))
        raise CoopflowError(f"simulation stopped after {MAX_STEPS} steps at {clock.now().isoformat()}: "
                            "deadlines that re-arm at the same instant loop forever")

    def _next(self, runtime: Runtime, pending) -> tuple[datetime | None, set[str]]:
        """The next instant something is due, and what is due then (schedule, deadline, event)."""
        now = clock.now()
        candidates: list[tuple[datetime, str]] = [(pending[0][0], "event")] if pending else []
        for sched in self.policy.schedules.values():
            at = schedules.trigger_for(self.policy, sched).get_next_fire_time(None, now + timedelta(microseconds=1))
            if at is not None:
                candidates.append((at, "schedule"))
        if (alarm := alarms.soonest(runtime.store)) is not None:
            candidates.append((max(alarm, now), "deadline"))
        if (at := digest.next_at(self.policy, now)) is not None:
            candidates.append((at, "digest"))
        if not candidates:
            return None, set()
        moment = min(at for at, _ in candidates)
        return moment, {kind for at, kind in candidates if at <= moment}

    def _submit(self, runtime: Runtime, event: ScriptedEvent) -> None:
        executor = runtime.executor
        extra = {"scripted": True}
        if event.start:
            sub = executor.submit_start(event.start, event.actor, event.set, extra=extra)
            if event.ref:
                self.refs[event.ref] = sub.instance
        else:
            if event.fire is None or event.instance is None:  # only an empty `start: ""` gets here without them
                raise UserError(f"a scripted event needs a workflow to start, or fire with instance: {event!r}")
            instance = self.refs.get(event.instance, event.instance)
            executor.submit_fire(instance, event.fire, event.actor, event.set, withdraw=event.withdraw, extra=extra)

    def _entry(self, outcome: Outcome, now: datetime) -> Entry:
        source = outcome.provenance
        if "schedule" in source:
            kind = "schedule"
        elif "timer" in source:
            kind = "deadline"
        elif "rule" in source:
            kind = "rule"
        elif source.get("scripted"):
            kind = "event"
        else:
            kind = "action"
        host = None
        if kind == "schedule":
            sched = self.policy.schedules.get(source["schedule"])
            if sched and sched.host:
                host = outcome.fields.get(sched.host.field)
        extra: dict[str, Any] = {k: source[k] for k in ("rule", "schedule", "cause") if k in source}
        return Entry(at=now.astimezone(self.policy.tz).isoformat(), kind=kind, workflow=outcome.workflow,
                     instance=outcome.instance, trigger=outcome.trigger, outcome=outcome.status, detail=outcome.text,
                     host=host, actor=outcome.actor, from_state=outcome.from_state, to_state=outcome.to_state, extra=extra)


def timeline_json(entries: list[Entry]) -> str:
    return json.dumps([e.as_json() for e in entries], ensure_ascii=False, indent=1)
