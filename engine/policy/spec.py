"""The policy language: frozen pydantic models for config.yaml, workflows/*.yaml and rules/*.yaml.

These models check the shape of each file on its own; checks that span files (does this
workflow exist, is that role declared) live in `engine.policy.loader`. Every model forbids unknown
keys. The documentation of every field is docs/policy.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    field_validator,
    model_validator,
)

ID_PATTERN = r"^[a-z][a-z0-9_]*$"
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
EventName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")]
PersonId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.\-]*$")]
Clause = Annotated[
    str,
    BeforeValidator(
        lambda v: str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v,
        json_schema_input_type=str | int | float,  # the JSON Schema accepts `clause: 2` as the loader does
    ),
    StringConstraints(min_length=1),
]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
FieldType = Literal["str", "int", "float", "bool", "date", "datetime", "party", "actor", "enum", "list"]
SYSTEM = "system"
ANY_STATE = "*"


class Strict(BaseModel):
    """Base of every policy model: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


# --------------------------------------------------------------------------- durations


class Duration(Strict):
    """A span of time: exactly one of working days, calendar days or hours."""

    working_days: Annotated[int, Field(ge=0, le=3660)] | None = None
    days: Annotated[int, Field(ge=0, le=3660)] | None = None
    hours: Annotated[float, Field(gt=0, le=87840)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Duration:
        given = [k for k in ("working_days", "days", "hours") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of working_days, days or hours"
                + (f" (found {', '.join(given)})" if given else "")
            )
        return self

    def describe(self) -> str:
        """Human text such as '5 working days'."""
        for key, unit in (("working_days", "working day"), ("days", "day"), ("hours", "hour")):
            value = getattr(self, key)
            if value is not None:
                shown = int(value) if float(value).is_integer() else value
                return f"{shown} {unit}{'' if shown == 1 else 's'}"
        return ""


class Deadline(Duration):
    """How long an instance may stay in a state before `fire` is triggered by the system.

    With `at`, the deadline is the datetime held in that field; the duration is the fallback
    used while the field is empty.
    """

    fire: Id
    at: Id | None = None
    clause: Clause | None = None
    remind: Duration | list[Duration] | None = None  # reminders before it expires (docs/policy.md)

    def reminders(self) -> list[Duration]:
        """The `remind` spans, one or several, longest first (so the earliest reminder comes first)."""
        spans = [] if self.remind is None else self.remind if isinstance(self.remind, list) else [self.remind]
        return sorted(spans, key=lambda d: (d.working_days or 0, d.days or 0, d.hours or 0), reverse=True)


# --------------------------------------------------------------------------- config.yaml


class Agreement(Strict):
    id: Id
    title: str
    signed: date | None = None
    effective: date | None = None
    expires: date | None = None
    place: str | None = None   # the place of the report's date line; default: the province named in `title`
    signer: Id | None = None   # the role whose title signs the report for each agency (e.g. leader)


class Role(Strict):
    title: str | None = None
    people: list[PersonId] = []


class Party(Strict):
    title: str
    short: str | None = None
    roles: dict[Id, Role]


class YearOverrides(Strict):
    off: list[date] = []
    work: list[date] = []


class CalendarSpec(Strict):
    weekend: list[Weekday] = ["sat", "sun"]
    holidays: str | None = "VN"
    subdivision: str | None = None
    overrides: dict[int, YearOverrides] = {}


class ConsoleSink(Strict):
    level: str = "INFO"


class FileSink(Strict):
    path: str
    level: str = "INFO"
    rotation: str = "10 MB"
    retention: str = "30 days"
    group_readable: bool = False  # file mode 0640 (a group of operators reads it) instead of 0600


class LoggingSpec(Strict):
    console: ConsoleSink | None = ConsoleSink()
    file: FileSink | None = None
    json_lines: FileSink | None = Field(default=None, alias="json")


class Paths(Strict):
    workflows: str = "workflows"
    rules: str = "rules"
    report_templates: str = "templates/report"  # the review report's Jinja2 templates (docs/operators.md)


class AuditSpec(Strict):
    """Where the history's secret key and the anchors live (relative paths: to config.yaml's folder).

    Defaults: beside a SQLite store file (<db>.audit-key, <db>.anchors), else beside config.yaml.
    """

    key_file: str | None = None
    anchor_file: str | None = None
    anchor_every: Annotated[float, Field(gt=0, le=86400)] = 60.0  # seconds between the daemon's anchors


class HttpSpec(Strict):
    """Where `coopflow run` (and `coopflow serve`) serve the HTTP API and the web console."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8470, ge=0, le=65535)
    max_body: int = Field(default=1_000_000, ge=1024)  # bytes; larger requests get 413
    cors_origins: list[str] = []  # CORS is off unless origins are listed here


EMAIL_PATTERN = r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
Email = Annotated[str, StringConstraints(pattern=EMAIL_PATTERN, max_length=254)]
HttpUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s/]+(/\S*)?$")]
ContactKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.\-]*$")]


class Secret(Strict):
    """Where a secret comes from: an environment variable's name or a file's path, never its value."""

    env: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Secret:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env (a variable name) or file (a path)")
        return self


class SmtpSpec(Strict):
    host: str
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    security: Literal["starttls", "tls", "none"] = "starttls"
    user: str | None = None
    password: Secret | None = None
    sender: Email = Field(alias="from")


class WebhookSpec(Strict):
    secret: Secret | None = None


class DigestSpec(Strict):
    """notifications.digest: one message a working day listing each person's open tasks."""

    at: str = "07:30"
    opt_out: list[PersonId] = []  # people who do not want the digest

    @field_validator("at")
    @classmethod
    def _time(cls, at: str) -> str:
        return _time_of_day(at)


class NotificationsSpec(Strict):
    """notifications: who is reached how (docs/notifications.md)."""

    public_url: HttpUrl
    contacts: dict[ContactKey, Email] = {}   # person id, or party.role for a shared mailbox
    webhooks: dict[Id, HttpUrl] = {}         # party id -> URL
    smtp: SmtpSpec | None = None
    webhook: WebhookSpec = WebhookSpec()
    templates: str = "templates"
    timeout: Annotated[float, Field(gt=0, le=300)] = 10.0
    attempts: Annotated[int, Field(ge=1, le=50)] = 8
    backoff: Annotated[float, Field(gt=0, le=86400)] = 30.0
    remind_at: str = "07:30"                 # local time of reminders counted in days (docs/notifications.md)
    digest: DigestSpec | None = None         # the daily digest of open tasks; off when absent

    @field_validator("remind_at")
    @classmethod
    def _remind_at(cls, at: str) -> str:
        return _time_of_day(at)


class ConfigSpec(Strict):
    """config.yaml: the deployment of one agreement."""

    agreement: Agreement
    parties: dict[Id, Party]
    timezone: str = "Asia/Ho_Chi_Minh"
    calendar: CalendarSpec = CalendarSpec()
    store: str = "sqlite:///coopflow.db"
    logging: LoggingSpec = LoggingSpec()
    paths: Paths = Paths()
    audit: AuditSpec = AuditSpec()  # docs/security.md
    notifications: NotificationsSpec | None = None  # docs/notifications.md
    http: HttpSpec = HttpSpec()
    administrators: list[PersonId] = []  # people (listed under some role) who administer accounts and tokens

    @field_validator("parties")
    @classmethod
    def _some_parties(cls, parties: dict[str, Party]) -> dict[str, Party]:
        if not parties:
            raise ValueError("declare at least one party")
        return parties

    @model_validator(mode="after")
    def _administrators_are_people(self) -> ConfigSpec:
        people = {p for party in self.parties.values() for role in party.roles.values() for p in role.people}
        unknown = [a for a in self.administrators if a not in people]
        if unknown:
            raise ValueError(f"administrators: {', '.join(unknown)} not listed in the people of any role")
        return self


# --------------------------------------------------------------------------- workflows


class FieldSpec(Strict):
    """A typed instance field."""

    type: FieldType = "str"
    title: str | None = None
    required: bool = False
    default: Any = None
    values: list[str] | None = None

    @model_validator(mode="after")
    def _enum_values(self) -> FieldSpec:
        if self.type == "enum" and not self.values:
            raise ValueError("an enum field needs a non-empty 'values' list")
        if self.type != "enum" and self.values is not None:
            raise ValueError("'values' is only allowed on enum fields")
        return self


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


class EmitAction(Strict):
    emit: EventName
    data: dict[Id, Any] = {}


class StartAction(Strict):
    start: Id
    with_: dict[Id, Any] = Field(default={}, alias="with")


class SetAction(Strict):
    set: dict[Id, Any]


class NotifyAction(Strict):
    notify: list[str]
    message: str


ACTION_KEYS = ("emit", "start", "set", "notify")


def _action_tag(value: Any) -> str | None:
    keys: Collection[str]
    if isinstance(value, dict):
        keys = value.keys()
    elif isinstance(value, BaseModel):
        keys = type(value).model_fields
    else:  # a string, list or number where an action belongs: no kind, so a clear error
        return None
    found = [k for k in ACTION_KEYS if k in keys]
    return found[0] if len(found) == 1 else None


Action = Annotated[
    Annotated[EmitAction, Tag("emit")] | Annotated[StartAction, Tag("start")] | Annotated[SetAction, Tag("set")] | Annotated[NotifyAction, Tag("notify")],
    Discriminator(
        _action_tag,
        custom_error_type="action_kind",
        custom_error_message="an action is a mapping with exactly one of the keys emit, start, set, notify",
    ),
]


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


# --------------------------------------------------------------------------- rules

TIME_PATTERN = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _time_of_day(at: str) -> str:
    if not TIME_PATTERN.match(at):
        raise ValueError(f"'{at}' is not a time of day as HH:MM (24-hour)")
    return at


class DayRule(Strict):
    """Which day of each period (a month, or a quarter): exactly one of

    * `nth_working_day`: the n-th working day, 1..23 (negative counts from the period's end);
    * `day`: a day of the month (months only), moved by `shift` when it is not a working day;
    * `weekday` with `nth`: the n-th (or, negative, n-th last) such weekday of the period,
      counting only the ones that are working days when `working` is true, else moved by `shift`
      (nth 1..5 or -1..-5, in a quarter too).
    """

    nth_working_day: int | None = None
    day: Annotated[int, Field(ge=1, le=31)] | None = None
    weekday: Weekday | None = None
    nth: int | None = None
    working: bool = False
    shift: Literal["next", "previous", "same_weekday", "none"] = "next"

    @model_validator(mode="after")
    def _one(self) -> DayRule:
        if sum(v is not None for v in (self.nth_working_day, self.day, self.weekday)) != 1:
            raise ValueError("give exactly one of nth_working_day, day or weekday (with nth)")
        if self.nth_working_day is not None and not (1 <= abs(self.nth_working_day) <= 23):
            raise ValueError("nth_working_day must be 1..23, or -1..-23 counting from the month's end")
        if self.weekday is None:
            if self.nth is not None or self.working:
                raise ValueError("'nth' and 'working' go with 'weekday' (e.g. {weekday: thu, nth: -1})")
            if self.shift == "same_weekday":
                raise ValueError("shift 'same_weekday' goes with 'weekday'; use next, previous or none")
        elif self.nth is None or self.nth == 0 or abs(self.nth) > 5:
            raise ValueError("with 'weekday' give 'nth': 1 (the first) .. 5, or -1 (the last) .. -5")
        return self


class CalendarRule(Strict):
    """When a schedule falls: a day (`day`) in each listed month or quarter, or listed dates."""

    months: list[Annotated[int, Field(ge=1, le=12)]] | None = None
    quarters: list[Annotated[int, Field(ge=1, le=4)]] | None = None
    dates: list[date] | None = None
    day: DayRule | None = None
    at: str = "08:00"

    @field_validator("months", "quarters", "dates")
    @classmethod
    def _listed(cls, items: list | None) -> list | None:
        if items is None:
            return None
        if not items:
            raise ValueError("name at least one")
        if len(set(items)) != len(items):
            raise ValueError("an item is listed twice")
        return sorted(items)

    @model_validator(mode="after")
    def _cycle(self) -> CalendarRule:
        given = [k for k in ("months", "quarters", "dates") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of months, quarters or dates")
        if self.dates is not None:
            if self.day is not None:
                raise ValueError("'dates' are the days themselves: leave 'day' out")
            return self
        if self.day is None:
            raise ValueError(f"with '{given[0]}' say which day: e.g. day: {{nth_working_day: 1}}")
        if self.quarters is not None and self.day.day is not None:
            raise ValueError("a day of the month needs 'months'; in a quarter use nth_working_day or weekday")
        return self

    @field_validator("at")
    @classmethod
    def _time(cls, at: str) -> str:
        return _time_of_day(at)

    @property
    def periods(self) -> list[tuple[int, int]]:
        """(first month, number of months) of each period in a year; none for `dates`."""
        if self.months is not None:
            return [(m, 1) for m in self.months]
        return [(3 * q - 2, 3) for q in self.quarters or ()]


class RotationEra(Strict):
    """From the occurrence on or after `from`, `first` hosts and the turns follow `rotate`."""

    from_: date = Field(alias="from")
    rotate: list[Id] | None = None
    first: Id | None = None

    @model_validator(mode="after")
    def _first_in(self) -> RotationEra:
        if self.first is not None and self.rotate is not None and self.first not in self.rotate:
            raise ValueError(f"first host '{self.first}' is not in rotate ({', '.join(self.rotate)})")
        return self


class HostRotation(Strict):
    """Hosts take turns in `rotate` order. The occurrence on or after `from` (default: the
    agreement's effective date) is hosted by `first` (default: the first listed); `changes`
    state a new order (or first host) from a later occurrence, leaving earlier ones as they were."""

    rotate: list[Id]
    field: Id = "host"
    from_: date | None = Field(default=None, alias="from")
    first: Id | None = None
    changes: list[RotationEra] = []

    @field_validator("rotate")
    @classmethod
    def _two(cls, rotate: list[str]) -> list[str]:
        if not rotate:
            raise ValueError("name the parties that take turns")
        if len(set(rotate)) != len(rotate):
            raise ValueError("a party is listed twice in rotate")
        return rotate

    @model_validator(mode="after")
    def _order(self) -> HostRotation:
        if self.first is not None and self.first not in self.rotate:
            raise ValueError(f"first host '{self.first}' is not in rotate ({', '.join(self.rotate)})")
        starts = [c.from_ for c in self.changes]
        if starts != sorted(set(starts)) or (self.from_ and starts and starts[0] <= self.from_):
            raise ValueError("changes must come in date order, each after 'from' and the one before")
        return self


class ScheduleSpec(Strict):
    id: Id
    title: str | None = None
    clause: Clause | None = None
    start: Id
    every: CalendarRule
    host: HostRotation | None = None
    with_: dict[Id, Any] = Field(default={}, alias="with")
    actor: str = Field(default=SYSTEM, alias="as")


class FireTarget(Strict):
    workflow: Id
    trigger: Id
    instance: str


class StartTarget(Strict):
    workflow: Id
    with_: dict[Id, Any] = Field(default={}, alias="with")


class EventRuleSpec(Strict):
    id: Id
    title: str | None = None
    clause: Clause | None = None
    on: EventName
    when: str | None = None
    start: StartTarget | None = None
    fire: FireTarget | None = None

    @model_validator(mode="after")
    def _one_target(self) -> EventRuleSpec:
        if (self.start is None) == (self.fire is None):
            raise ValueError("give exactly one of start or fire")
        return self


class RulesFile(Strict):
    """rules/*.yaml: schedules and event rules."""

    schedules: list[ScheduleSpec] = []
    events: list[EventRuleSpec] = []


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
