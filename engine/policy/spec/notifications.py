"""config.yaml `notifications:`: addresses, SMTP, webhooks, secrets and the daily digest (docs/notifications.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from engine.policy.spec.base import Id, PersonId, Strict, time_of_day

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
        return time_of_day(at)


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
        return time_of_day(at)
