"""workflows/*.yaml: states, transitions, approvals, meetings, the report's reading, and the
formats in which the store keeps pinned workflow versions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from engine.policy.spec.actions import Action
from engine.policy.spec.base import ANY_STATE, Clause, Id, Strict
from engine.policy.spec.durations import Deadline, Duration
from engine.policy.spec.fields import FieldSpec


class StateSpec(Strict):
    title: str
    clause: Clause | None = None
    description: str | None = None
    final: bool = False
    deadline: Deadline | None = None

    @model_validator(mode="after")
    def _final_has_no_deadline(self) -> StateSpec:
        if self.final and self.deadline is not None:
            raise ValueError("a final state cannot have a deadline")
        return self


class PartiesFrom(Strict):
    """Parties named by the instance: those in field `in` (a party or a list of parties), or
    `among` the listed ones, or else every party; minus the one in party field `others_than`."""

    in_: Id | None = Field(default=None, alias="in")
    among: list[Id] | None = None
    others_than: Id | None = None

    @model_validator(mode="after")
    def _some(self) -> PartiesFrom:
        if self.in_ is not None and self.among is not None:
            raise ValueError("give 'in' (a field) or 'among' (a list of parties), not both")
        if self.in_ is None and self.among is None and self.others_than is None:
            raise ValueError("say which parties: in (a field), among (parties) and/or others_than (a party field)")
        return self


class Approvals(Strict):
    """Consent needed from distinct parties before the transition fires."""

    parties: Literal["all"] | list[Id] | PartiesFrom = "all"
    quorum: Annotated[int, Field(ge=1)] | None = None
    expires: Duration | None = None


class TransitionSpec(Strict):
    trigger: Id
    title: str | None = None
    clause: Clause | None = None
    source: str | list[str] = Field(alias="from")
    dest: Id = Field(alias="to")
    by: list[str]
    when: str | None = None
    require: list[Id] = []
    accepts: list[Id] = []
    approvals: Approvals | None = None
    then: list[Action] = []
    optional: bool = False  # a step one may take (taking a request back, cancelling), never one owed

    @field_validator("by")
    @classmethod
    def _someone(cls, by: list[str]) -> list[str]:
        if not by:
            raise ValueError("name at least one role (or 'system') that may fire this transition")
        return by

    @property
    def sources(self) -> list[str]:
        return [self.source] if isinstance(self.source, str) else list(self.source)


class MeetingSpec(Strict):
    """`meeting:` on a workflow whose instances are meetings (upcoming, the calendar, the report).

    `state` is where the meeting is set and awaited; `at` the datetime field holding its time
    (when it is empty, the time is the deadline of `state`); `held` the states meaning it took place."""

    state: Id
    at: Id | None = None
    held: list[Id] = []


class ActionReport(Strict):
    """`report.action:` instances of this workflow are action items set by a meeting's conclusions; the report of
    the following meetings lists them as done, late or open."""

    meeting: Id        # the field holding the instance id of the meeting that set the item
    party: Id          # the party field: who carries it out
    due: Id            # the datetime field: by when
    done: list[Id]     # the states meaning it was carried out


class ReportSpec(Strict):
    """`report:` what the review report reads from this workflow's instances (docs/policy.md); every key optional."""

    dispatch: list[Id] = []          # fields holding dispatch numbers (số công văn), listed with each request
    answer: Id | None = None         # the field holding the answer or outcome, listed with each request
    overdue: list[Id] = []           # states meaning late: lateness counts from the nominal due time that led there
    escalated: list[Id] = []         # states meaning raised to the agencies' leaders
    referred: list[Id] = []          # states meaning referred to a higher authority (the People's Committee)
    conclusions: Id | None = None    # on a meeting: the field holding its conclusions
    action: ActionReport | None = None


class WorkflowSpec(Strict):
    """workflows/*.yaml: one clause of the agreement as a state machine."""

    id: Id
    title: str
    clause: Clause
    description: str | None = None
    started_by: list[str]
    fields: dict[Id, FieldSpec] = {}
    initial: Id
    states: dict[Id, StateSpec]
    transitions: list[TransitionSpec]
    subject: Id | None = None  # the field that names an instance in lists, messages and the report
    meeting: MeetingSpec | None = None
    report: ReportSpec | None = None  # what the review report reads (docs/policy.md)

    @field_validator("states")
    @classmethod
    def _some_states(cls, states: dict[str, StateSpec]) -> dict[str, StateSpec]:
        if not states:
            raise ValueError("declare at least one state")
        return states

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> WorkflowSpec:
        """A workflow version as the store keeps it (`to_stored()`), upgraded from the format it
        was pinned in: a key renamed or added since then must not make a running instance's
        version unreadable. A stored form without `format` is format 1."""
        stored = dict(stored)
        found = stored.pop("format", 1)
        if not isinstance(found, int) or not 1 <= found <= STORED_FORMAT:
            raise ValueError(f"workflow version {stored.get('id')!r} is stored in format {found!r}; this coopflow "
                             f"reads formats 1 to {STORED_FORMAT} (upgrade coopflow)")
        for number in range(found, STORED_FORMAT):
            stored = STORED_UPGRADES[number](stored)
        return cls.model_validate(stored)

    def to_stored(self) -> dict[str, Any]:
        """The JSON the store pins instances to: the canonical dump plus its `format` number."""
        return {**self.model_dump(mode="json", by_alias=True), "format": STORED_FORMAT}

    def sources_of(self, t: TransitionSpec) -> list[str]:
        """The declared states `t` leaves: its `from` states, or every non-final state for "*"."""
        if ANY_STATE in t.sources:
            return [s for s, st in self.states.items() if not st.final]
        return [s for s in dict.fromkeys(t.sources) if s in self.states]

    def leaves(self, t: TransitionSpec, state: str) -> bool:
        """Can transition `t` fire from `state`?"""
        return state in self.sources_of(t)


# --------------------------------------------------------------------------- stored formats
# A pinned workflow version is kept as JSON for as long as an instance uses it. When this
# language renames or reshapes a key, bump STORED_FORMAT and add the step from the previous
# format here: STORED_UPGRADES[n] turns a format-n dict into a format-(n+1) dict.


def _accepts_every_field_but_parties(stored: dict[str, Any]) -> dict[str, Any]:
    """Format 1 -> 2: transitions gained `accepts`. A version pinned before that keeps working:
    each of its transitions accepts every field except the party fields, which decide who acts."""
    fields = stored.get("fields", {})
    party = {n for n, f in fields.items() if f.get("type") == "party"}
    legacy = [n for n in fields if n not in party]
    return {**stored, "transitions": [{"accepts": legacy, **t} for t in stored.get("transitions", [])]}


STORED_FORMAT = 2
STORED_UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _accepts_every_field_but_parties}
