"""Operators' logs: loguru configured from the ``logging`` section of config.yaml.

Three sinks, each optional (see `engine.policy.spec.LoggingSpec`):

* console — human lines on stderr, colorized only when stderr is a TTY;
* file — the same human lines in a rotating file (``rotation``/``retention`` as loguru reads
  them, e.g. ``"10 MB"``, ``"30 days"``);
* json (``json_lines``) — one flat JSON object per line, rotating too::

    {"ts": "2025-03-04T09:15:02.123456+07:00", "level": "INFO", "message": "event applied",
     "instance": "hd-12", "trigger": "duyệt", "actor": "so_tai_chinh", "outcome": "applied"}

Keys are ts, level, message, then each of `EVENT_FIELDS` bound on the record, then any other
bound ``extra`` keys (flat; an extra named ts/level/message is dropped), then ``exception``
(plain stdlib traceback text) when one is attached. Values that are not JSON are written with
``str``. Text is UTF-8 without ASCII escaping, so Vietnamese stays readable.

The JSON line is produced by a ``format=`` callable (not ``serialize=True``, which nests the
record and repeats the message): it computes the line into ``record["extra"]["_json"]`` and
returns ``"{extra[_json]}\\n"``, so braces and ``<tags>`` in messages are never interpreted and
loguru's rotation/retention still apply. Likewise the human format stores the compact
``instance=... trigger=...`` suffix in ``record["extra"]["_kv"]``. Extra keys starting with
``_`` are internal and never shown.

Every sink uses ``diagnose=False`` (tracebacks never print local variables — they may hold
personal data) and ``backtrace=False``. `configure` is idempotent: it removes the sinks it
installed before (and loguru's default stderr handler) and installs them again.

Engine code logs an applied or refused event through `event_logger`::

    event_logger(instance=i.id, workflow=w, trigger=t, from_=src, to=dst,
                 actor=a, outcome="refused", reason=why).warning("event refused")
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from engine.policy.spec import FileSink, LoggingSpec

if TYPE_CHECKING:
    import loguru

__all__ = ["EVENT_FIELDS", "configure", "bridge_stdlib", "event_logger", "remove_sinks"]

EVENT_FIELDS = ("instance", "workflow", "trigger", "from", "to", "actor", "outcome", "reason")

_BASE_KEYS = ("ts", "level", "message")
_HUMAN = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS Z}</green> | <level>{level: <8}</level> | "
    "<cyan>{name}</cyan>:<cyan>{function}</cyan>:<cyan>{line}</cyan> - "
    "<level>{message}</level>{extra[_kv]}\n{exception}"
)
# Stdlib loggers tamed by bridge_stdlib, with the level each is set to.
_STDLIB_LEVELS = {
    "apscheduler": "INFO",
    "apscheduler.scheduler": "WARNING",  # "Added job", "Running job": one line per timer is noise
    "apscheduler.executors": "WARNING",
    "transitions": "INFO",
    "sqlalchemy": "WARNING",
}

_lock = threading.Lock()
_handler_ids: list[int] = []
# loguru's own stderr handler (added at import) prints local variables in tracebacks: replace it
# by the same handler with diagnose and backtrace off, until `configure` removes it.
try:
    logger.remove(0)
    _DEFAULT_HANDLER_ID = logger.add(sys.stderr, diagnose=False, backtrace=False)
except ValueError:  # already removed (engine.logs imported after someone else's set-up)
    _DEFAULT_HANDLER_ID = -1


def _ordered_extra(extra: dict[str, Any]) -> list[tuple[str, Any]]:
    """Public extra items: EVENT_FIELDS in their order, then the others as bound."""
    items = [(k, extra[k]) for k in EVENT_FIELDS if k in extra]
    items += [
        (k, v) for k, v in extra.items() if k not in EVENT_FIELDS and not k.startswith("_")
    ]
    return items


def _kv_value(value: Any) -> str:
    """One value for the compact ``key=value`` suffix, quoted when it has spaces or is empty."""
    text = str(value)
    if not text or any(c.isspace() or c == '"' for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


def _human_format(record: loguru.Record) -> str:
    """loguru format callable for console and file: the message then ``key=value`` fields."""
    pairs = _ordered_extra(record["extra"])
    record["extra"]["_kv"] = "".join(f" {k}={_kv_value(v)}" for k, v in pairs)
    return _HUMAN


def json_line(record: loguru.Record) -> str:
    """The flat JSON object (without newline) that the json sink writes for ``record``."""
    obj: dict[str, Any] = {
        "ts": record["time"].isoformat(),
        "level": record["level"].name,
        "message": record["message"],
    }
    for key, value in _ordered_extra(record["extra"]):
        if key not in _BASE_KEYS:
            obj[key] = value
    if record["exception"]:
        type_, value, tb = record["exception"]
        obj["exception"] = "".join(traceback.format_exception(type_, value, tb)).rstrip("\n")
    return json.dumps(obj, ensure_ascii=False, default=str)


def _json_format(record: loguru.Record) -> str:
    """loguru format callable for the json sink: the line is precomputed into extra."""
    record["extra"]["_json"] = json_line(record)
    return "{extra[_json]}\n"


def _level(name: str) -> str:
    """Level names as loguru spells them (config may say ``info``)."""
    return name.strip().upper()


def file_mode(sink: FileSink) -> int:
    """0600, or 0640 with ``group_readable: true``: log lines hold personal data."""
    return 0o640 if sink.group_readable else 0o600


def _add_file(sink: FileSink, base_dir: Path, fmt: Callable[[loguru.Record], str], enqueue: bool) -> int:
    """Add one rotating file sink; its parent folders are created. The file (and each rotated
    one) is created with `file_mode` whatever the umask; a looser existing file is tightened."""
    from engine.store.database import tighten

    path = Path(base_dir) / sink.path
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = file_mode(sink)
    tighten(path, mode=mode)

    def opener(name: str, flags: int) -> int:  # the umask can only make the mode tighter
        return os.open(name, flags, mode)

    return logger.add(
        str(path),
        level=_level(sink.level),
        format=fmt,
        rotation=sink.rotation,
        retention=sink.retention,
        encoding="utf-8",
        colorize=False,
        enqueue=enqueue,
        backtrace=False,
        diagnose=False,
        opener=opener,
    )


def remove_sinks() -> None:
    """Remove the sinks a previous `configure` installed (nothing else)."""
    with _lock:
        while _handler_ids:
            try:
                logger.remove(_handler_ids.pop())
            except ValueError:  # already removed by someone else
                pass


def configure(
    spec: LoggingSpec, base_dir: Path, *, console: bool = True, enqueue: bool = False
) -> None:
    """Install the console, file and json sinks of ``spec`` (replacing earlier ones).

    Removes loguru's default handler and whatever a previous call installed, so calling twice
    does not duplicate lines. File paths are relative to ``base_dir``. ``console=False`` skips
    the console sink even if the spec has one; ``enqueue=True`` makes the sinks safe when
    several processes write the same files.
    """
    remove_sinks()
    with _lock:
        try:
            logger.remove(_DEFAULT_HANDLER_ID)
        except ValueError:
            pass
        if console and spec.console is not None:
            _handler_ids.append(
                logger.add(
                    sys.stderr,
                    level=_level(spec.console.level),
                    format=_human_format,
                    colorize=bool(getattr(sys.stderr, "isatty", lambda: False)()),
                    enqueue=enqueue,
                    backtrace=False,
                    diagnose=False,
                )
            )
        if spec.file is not None:
            _handler_ids.append(_add_file(spec.file, base_dir, _human_format, enqueue))
        if spec.json_lines is not None:
            _handler_ids.append(_add_file(spec.json_lines, base_dir, _json_format, enqueue))


class InterceptHandler(logging.Handler):
    """stdlib handler forwarding each record to loguru, at the real caller's frame."""

    def emit(self, record: logging.LogRecord) -> None:
        """Forward ``record`` to loguru (the loguru documentation's pattern)."""
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        # Walk out of the logging module (and frozen importlib frames) to the real caller.
        frame, depth = inspect.currentframe(), 0
        while frame is not None:
            filename = frame.f_code.co_filename
            is_logging = filename == logging.__file__
            is_frozen = "importlib" in filename and "_bootstrap" in filename
            if depth > 0 and not (is_logging or is_frozen):
                break
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


def bridge_stdlib(level: str = "INFO") -> None:
    """Route stdlib logging into loguru: one `InterceptHandler` on the root logger.

    The root logger is set to ``level``; apscheduler and transitions to INFO, sqlalchemy to
    WARNING so they are not noisy. Idempotent: an earlier InterceptHandler is replaced.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, InterceptHandler):
            root.removeHandler(handler)
    root.addHandler(InterceptHandler())
    root.setLevel(_level(level))
    for name, lvl in _STDLIB_LEVELS.items():
        logging.getLogger(name).setLevel(lvl)


def event_logger(**fields: Any) -> loguru.Logger:
    """``logger.bind(**fields)`` without the None values — how engine code logs an event.

    ``from`` is a Python keyword, so ``from_=...`` is accepted and bound as ``from`` (any
    trailing ``_`` on an `EVENT_FIELDS` name is dropped the same way).
    """
    bound: dict[str, Any] = {}
    for key, value in fields.items():
        if value is None:
            continue
        if key.endswith("_") and key.rstrip("_") in EVENT_FIELDS:
            key = key.rstrip("_")
        bound[key] = value
    return logger.bind(**bound)
