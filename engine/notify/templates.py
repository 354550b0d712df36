"""Message templates: Jinja2 files in the policy's templates/ folder, one per kind of message.

Each file is `<kind>.txt.j2`; its first line is the subject, the rest (after one blank line) the
plain-text body. Templates are rendered with StrictUndefined: a variable the engine does not
provide is an error, found by `coopflow check` on a sample context.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

KINDS = ("notify", "overdue")


def folder(policy_root: Path, notifications) -> Path:
    return (policy_root / notifications.templates).resolve()


def environment(path: Path) -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(path), encoding="utf-8"), undefined=jinja2.StrictUndefined,
                              autoescape=False, keep_trailing_newline=False, auto_reload=True)


def file_name(kind: str) -> str:
    return f"{kind}.txt.j2"


def render(path: Path, kind: str, context: dict[str, Any]) -> tuple[str, str]:
    """(subject, body) of the `kind` template rendered on `context`."""
    text = environment(path).get_template(file_name(kind)).render(context)
    subject, _, body = text.strip("\n").partition("\n")
    return " ".join(subject.split()), body.strip("\n") + "\n"


def sample_context(config) -> dict[str, Any]:
    """A context with every variable a template may use, for `coopflow check`."""
    party_id = next(iter(config.parties))
    party = config.parties[party_id]
    return {
        "agreement": {"id": config.agreement.id, "title": config.agreement.title},
        "workflow": {"id": "sample", "title": "Quy trình mẫu", "clause": "1"},
        "instance": {"id": "sample-0001", "state": "sent", "state_title": "Đã gửi", "from_state": "drafted",
                     "from_state_title": "Dự thảo", "fields": {}},
        "trigger": {"id": "send", "title": "Gửi"},
        "actor": f"{party_id}.focal_point",
        "message": "Nội dung thông báo mẫu.",
        "recipient": {"actor": f"{party_id}.focal_point:sample", "person": "sample", "party": party_id,
                      "party_title": party.title, "role": "focal_point", "role_title": "Cán bộ đầu mối"},
        "link": f"{config.notifications.public_url.rstrip('/')}/instances/sample-0001",
        "at": "2025-01-02T08:00:00+07:00",
    }


def problems(policy_root: Path, config) -> list[tuple[tuple, str]]:
    """(config location, message) for every template that is missing, does not parse or uses an unknown variable."""
    path = folder(policy_root, config.notifications)
    loc = ("notifications", "templates")
    if not path.is_dir():
        return [(loc, f"templates folder {path} not found")]
    out = []
    context = sample_context(config)
    for kind in KINDS:
        name = file_name(kind)
        try:
            subject, _ = render(path, kind, context)
        except jinja2.TemplateNotFound:
            out.append((loc, f"template {name} not found in {path}"))
        except jinja2.TemplateSyntaxError as exc:
            out.append((loc, f"template {name} line {exc.lineno}: {exc.message}"))
        except jinja2.UndefinedError as exc:
            out.append((loc, f"template {name}: {exc.message} (known variables: {', '.join(sorted(context))})"))
        except Exception as exc:  # e.g. a filter applied to the wrong type
            out.append((loc, f"template {name}: {type(exc).__name__}: {exc}"))
        else:
            if not subject:
                out.append((loc, f"template {name}: the first line (the subject) is empty"))
    return out
