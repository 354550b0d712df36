"""Message templates: Jinja2 files in the policy's templates/ folder, one per kind of message.

Each file is `<kind>.txt.j2`; its first line is the subject, the rest (after one blank line) the
plain-text body. Templates are rendered with StrictUndefined: a variable the engine does not
provide is an error, found by `coopflow check` on a sample context.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jinja2

from engine.notify import messages

KINDS = ("notify", "overdue", "remind", "digest")
# What rendering an administrator's template may raise (a missing file, a variable its kind lacks,
# a filter on the wrong type): the engine logs it and skips that message instead of stopping.
TEMPLATE_ERRORS = (jinja2.TemplateError, TypeError, ValueError, AttributeError, KeyError, OSError)


def folder(policy_root: Path, notifications) -> Path:
    return (policy_root / notifications.templates).resolve()


@functools.lru_cache(maxsize=16)
def environment(path: Path) -> jinja2.Environment:
    """One environment per folder: compiled templates are cached, and reloaded when a file changes."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(path), encoding="utf-8"), undefined=jinja2.StrictUndefined,
                              autoescape=False, keep_trailing_newline=False, auto_reload=True)


def file_name(kind: str) -> str:
    return f"{kind}.txt.j2"


def render(path: Path, kind: str, context: dict[str, Any]) -> tuple[str, str]:
    """(subject, body) of the `kind` template rendered on `context`."""
    text = environment(path).get_template(file_name(kind)).render(context)
    subject, _, body = text.strip("\n").partition("\n")
    return " ".join(subject.split()), body.strip("\n") + "\n"


def problems(policy_root: Path, config) -> list[tuple[tuple, str]]:
    """(config location, message) for every template that is missing, does not parse or uses an unknown variable."""
    path = folder(policy_root, config.notifications)
    loc = ("notifications", "templates")
    if not path.is_dir():
        return [(loc, f"templates folder {path} not found")]
    out = []
    context = messages.sample(config)
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
