"""The policy language: frozen pydantic models for config.yaml, workflows/*.yaml and rules/*.yaml.

These models check the shape of each file on its own; checks that span files (does this
workflow exist, is that role declared) live in `engine.policy.checks`. Every model forbids unknown
keys. The documentation of every field is docs/policy.md.

One module per concern: `base` (the strict base model, ids, weekdays), `durations` (durations,
deadlines), `fields`, `actions` (`then:`), `workflows` (states, transitions, the workflow, its
stored formats), `rules` (schedules, calendar rules, rotations, event rules), `notifications` and
`config` (config.yaml). The names below are the language's public surface; import them from here.
"""

from engine.policy.spec.actions import ACTION_KEYS, Action, EmitAction, NotifyAction, SetAction, StartAction, is_expression
from engine.policy.spec.base import (
    ANY_STATE,
    ID_PATTERN,
    SYSTEM,
    TIME_PATTERN,
    WEEKDAYS,
    Clause,
    EventName,
    Id,
    PersonId,
    Strict,
    Weekday,
    time_of_day,
)
from engine.policy.spec.config import (
    Agreement,
    AuditSpec,
    CalendarSpec,
    ConfigSpec,
    ConsoleSink,
    FileSink,
    HttpSpec,
    LoggingSpec,
    Party,
    Paths,
    Role,
    YearOverrides,
)
from engine.policy.spec.durations import Deadline, Duration
from engine.policy.spec.fields import FieldSpec, FieldType
from engine.policy.spec.notifications import (
    EMAIL_PATTERN,
    ContactKey,
    DigestSpec,
    Email,
    HttpUrl,
    NotificationsSpec,
    Secret,
    SmtpSpec,
    WebhookSpec,
)
from engine.policy.spec.rules import (
    CalendarRule,
    DayRule,
    EventRuleSpec,
    FireTarget,
    HostRotation,
    RotationEra,
    RulesFile,
    ScheduleSpec,
    StartTarget,
)
from engine.policy.spec.workflows import (
    ActionReport,
    Approvals,
    MeetingSpec,
    PartiesFrom,
    ReportSpec,
    StateSpec,
    TransitionSpec,
    WorkflowSpec,
)

# STORED_FORMAT and STORED_UPGRADES stay in engine.policy.spec.workflows, where
# WorkflowSpec.from_stored reads them (patch them there).
__all__ = [
    "ACTION_KEYS", "ANY_STATE", "EMAIL_PATTERN", "ID_PATTERN", "SYSTEM", "TIME_PATTERN", "WEEKDAYS",
    "Action", "ActionReport", "Agreement", "Approvals", "AuditSpec", "CalendarRule", "CalendarSpec", "Clause",
    "ConfigSpec", "ConsoleSink", "ContactKey", "DayRule", "Deadline", "DigestSpec", "Duration", "Email",
    "EmitAction", "EventName", "EventRuleSpec", "FieldSpec", "FieldType", "FileSink", "FireTarget",
    "HostRotation", "HttpSpec", "HttpUrl", "Id", "LoggingSpec", "MeetingSpec", "NotificationsSpec",
    "NotifyAction", "PartiesFrom", "Party", "Paths", "PersonId", "ReportSpec", "Role", "RotationEra",
    "RulesFile", "ScheduleSpec", "Secret", "SetAction", "SmtpSpec", "StartAction", "StartTarget", "StateSpec",
    "Strict", "TransitionSpec", "Weekday", "WebhookSpec", "WorkflowSpec", "YearOverrides", "is_expression",
    "time_of_day",
]
