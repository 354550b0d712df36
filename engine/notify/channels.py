"""The two channels: e-mail over SMTP (smtplib) and signed JSON webhooks (httpx).

A send either returns, or raises `Permanent` (the far end refused for good: a 5xx SMTP reply to
the recipient, a 4xx HTTP status other than 408/429) or any other exception (worth a retry).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path

from engine.exceptions import CoopflowError
from engine.store.deliveries import Delivery
from engine.store.statuses import Channel

EMAIL, WEBHOOK = Channel.EMAIL, Channel.WEBHOOK
DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}


class Permanent(Exception):
    """The far end refused the message for good: retrying will not help."""


def read_secret(secret, root: Path) -> str:
    """The value of a `{env: NAME}` or `{file: PATH}` secret (a relative path is relative to config.yaml)."""
    if secret.env:
        value = os.environ.get(secret.env)
        if value is None:
            raise CoopflowError(f"environment variable {secret.env} (a notifications secret) is not set")
        return value
    path = Path(secret.file)
    path = path if path.is_absolute() else root / path
    try:
        return path.read_text(encoding="utf-8").strip("\r\n")
    except OSError as exc:
        raise CoopflowError(f"cannot read the notifications secret file {path}: {exc.strerror}") from None


def message_id(delivery_id: int, key: str, sender: str) -> str:
    """Stable per delivery: a resend after a crash carries the same Message-ID."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    return f"<coopflow.{delivery_id}.{digest}@{sender.rpartition('@')[2]}>"


def send_email(smtp, root: Path, timeout: float, delivery: Delivery) -> None:
    import smtplib  # the senders' libraries are imported when a message is sent, not by every command
    import ssl
    from email.header import Header
    from email.mime.text import MIMEText
    from email.utils import formatdate

    # MIMEText + Header (compat32): the newer EmailMessage folding drops the space between two
    # encoded words of a long Vietnamese subject ("đổi thông" arrives as "đổithông").
    body = delivery.message
    message = MIMEText(body["text"], "plain", "utf-8")
    # typeshed types a header value as str; compat32 (MIMEText's policy) takes a Header
    message["Subject"] = Header(body["subject"], "utf-8")  # type: ignore[assignment]
    message["From"] = smtp.sender
    message["To"] = delivery.address
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id(delivery.id, delivery.key, smtp.sender)
    message["X-Coopflow-Delivery"] = str(delivery.id)
    port = smtp.port or DEFAULT_PORTS[smtp.security]
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if smtp.security == "tls":
        client = smtplib.SMTP_SSL(smtp.host, port, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(smtp.host, port, timeout=timeout)
    with client:
        if smtp.security == "starttls":
            client.starttls(context=context)
        if smtp.user:
            client.login(smtp.user, read_secret(smtp.password, root) if smtp.password else "")
        try:
            client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            error = f"{code} {text.decode('utf-8', 'replace') if isinstance(text, bytes) else text}"
            raise (Permanent(error) if code >= 500 else RuntimeError(error)) from None
        except smtplib.SMTPResponseException as exc:
            error = f"{exc.smtp_code} {exc.smtp_error.decode('utf-8', 'replace') if isinstance(exc.smtp_error, bytes) else exc.smtp_error}"
            raise (Permanent(error) if exc.smtp_code >= 500 else RuntimeError(error)) from None


def signature(secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value of a webhook body."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def send_webhook(webhook, root: Path, timeout: float, delivery: Delivery) -> None:
    import httpx

    body = json.dumps({"delivery": delivery.id, **delivery.message}, ensure_ascii=False, sort_keys=True).encode("utf-8")
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "coopflow",
               "X-Coopflow-Delivery": str(delivery.id)}
    if webhook.secret:
        headers["X-Hub-Signature-256"] = signature(read_secret(webhook.secret, root), body)
    response = httpx.post(delivery.address, content=body, headers=headers, timeout=timeout, follow_redirects=False)
    if 200 <= response.status_code < 300:
        return
    error = f"HTTP {response.status_code} {response.reason_phrase}"
    if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
        raise Permanent(error)
    raise RuntimeError(error)
