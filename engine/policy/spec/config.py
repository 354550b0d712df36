"""config.yaml: the agreement, its parties and roles, the calendar, logging, paths, audit and HTTP."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from engine.policy.spec.base import Id, PersonId, Strict, Weekday
from engine.policy.spec.notifications import NotificationsSpec


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


class CliSpec(Strict):
    """cli: how the command line speaks when the locale names no language (engine/cli/language.py)."""

    language: Literal["vi", "en"] = "vi"


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
    cli: CliSpec = CliSpec()
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
