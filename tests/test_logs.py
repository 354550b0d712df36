"""Tests for engine.logs: loguru sinks from config, flat JSON lines, stdlib bridge."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

import pytest
from loguru import logger

from engine.logs import EVENT_FIELDS, bridge_stdlib, configure, event_logger, remove_sinks
from engine.policy.spec import ConsoleSink, FileSink, LoggingSpec

VI_MESSAGE = "Hồ sơ đã được Sở Tài chính duyệt"
VI_REASON = "thiếu chữ ký của Ủy ban"


@pytest.fixture(autouse=True)
def _clean_sinks():
    """Remove the sinks and the stdlib bridge a test installed, so tests do not leak."""
    root = logging.getLogger()
    names = ("", "apscheduler", "apscheduler.scheduler", "apscheduler.executors", "transitions", "sqlalchemy")
    saved = {name: logging.getLogger(name).level for name in names}
    handlers = list(root.handlers)
    yield
    remove_sinks()
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def spec(console: bool = False, rotation: str = "10 MB") -> LoggingSpec:
    """A logging spec with a file and a json sink under logs/ (console optional)."""
    return LoggingSpec(
        console=ConsoleSink(level="DEBUG") if console else None,
        file=FileSink(path="logs/coopflow.log", level="DEBUG", rotation=rotation),
        json=FileSink(path="logs/json/coopflow.jsonl", level="DEBUG", rotation=rotation),
    )


def json_records(base: Path) -> list[dict]:
    """Every JSON object written to the json sink."""
    text = (base / "logs/json/coopflow.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def file_text(base: Path) -> str:
    """Everything written to the human file sink."""
    return (base / "logs/coopflow.log").read_text(encoding="utf-8")


def test_yaml_alias_json_reaches_json_lines():
    """The YAML key `json` populates LoggingSpec.json_lines."""
    parsed = LoggingSpec.model_validate({"json": {"path": "a.jsonl"}})
    assert parsed.json_lines is not None and parsed.json_lines.path == "a.jsonl"


def test_json_sink_writes_flat_objects(tmp_path):
    """The json sink writes one flat object per line with ts, level, message and event fields."""
    configure(spec(), tmp_path)
    event_logger(
        instance="hd-12", workflow="giai_ngan", trigger="duyet", from_="cho_duyet",
        to="da_duyet", actor="so_tai_chinh", outcome="applied", reason=None, request_id=7,
    ).info("event applied")
    (record,) = json_records(tmp_path)
    assert list(record) == [
        "ts", "level", "message", "instance", "workflow", "trigger", "from", "to", "actor",
        "outcome", "request_id",
    ]
    assert record["level"] == "INFO" and record["message"] == "event applied"
    assert record["from"] == "cho_duyet" and record["request_id"] == 7
    assert datetime.fromisoformat(record["ts"]).utcoffset() is not None
    assert "reason" not in record and not any(k.startswith("_") for k in record)


def test_json_sink_keeps_vietnamese_unescaped(tmp_path):
    """Vietnamese text is written as readable UTF-8, not as \\u escapes."""
    configure(spec(), tmp_path)
    event_logger(instance="hd-1", outcome="refused", reason=VI_REASON).warning(VI_MESSAGE)
    raw = (tmp_path / "logs/json/coopflow.jsonl").read_text(encoding="utf-8")
    assert VI_MESSAGE in raw and VI_REASON in raw and "\\u" not in raw
    (record,) = json_records(tmp_path)
    assert record["reason"] == VI_REASON and record["level"] == "WARNING"


def test_json_sink_survives_braces_and_tags(tmp_path):
    """Braces and angle-bracket tags in messages and fields are written literally."""
    configure(spec(), tmp_path)
    logger.bind(reason="{x} </red>").info("value {0} <red>not markup</red> {}")
    (record,) = json_records(tmp_path)
    assert record["message"] == "value {0} <red>not markup</red> {}"
    assert record["reason"] == "{x} </red>"


def test_rotation_produces_rotated_files(tmp_path):
    """A small rotation size yields rotated files for both file sinks after enough writes."""
    configure(spec(rotation="1 KB"), tmp_path)
    for i in range(60):
        event_logger(instance=f"hd-{i}").info("a line long enough to fill a kilobyte quickly")
    remove_sinks()
    assert len(list((tmp_path / "logs").glob("coopflow*.log"))) > 1
    rotated = list((tmp_path / "logs/json").glob("coopflow*.jsonl"))
    assert len(rotated) > 1
    lines = [ln for p in rotated for ln in p.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 60 and all(json.loads(ln)["instance"].startswith("hd-") for ln in lines)


def test_console_line_shows_bound_fields(tmp_path, capsys):
    """The console line carries the present event fields as key=value after the message."""
    configure(spec(console=True), tmp_path)
    event_logger(instance="hd-3", trigger="duyet", outcome=None, reason=VI_REASON).info("applied")
    err = capsys.readouterr().err
    assert f'applied instance=hd-3 trigger=duyet reason="{VI_REASON}"' in err
    assert "outcome" not in err and "_kv" not in err and "\x1b[" not in err
    assert "instance=hd-3 trigger=duyet" in file_text(tmp_path)


def test_console_can_be_switched_off(tmp_path, capsys):
    """configure(console=False) installs no console sink."""
    configure(spec(console=True), tmp_path, console=False)
    logger.info("quiet")
    assert "quiet" not in capsys.readouterr().err
    assert "quiet" in file_text(tmp_path)


def test_stdlib_logging_arrives_in_sinks(tmp_path):
    """A stdlib apscheduler record reaches loguru's sinks, attributed to its real caller."""
    configure(spec(), tmp_path)
    bridge_stdlib()
    logging.getLogger("apscheduler.jobstores").info("Scheduler started %s", "ok")
    logging.getLogger("sqlalchemy.engine").info("SELECT 1")  # below WARNING: dropped
    assert [r["message"] for r in json_records(tmp_path)] == ["Scheduler started ok"]
    line = file_text(tmp_path)
    assert "test_stdlib_logging_arrives_in_sinks" in line and "Scheduler started ok" in line
    assert logging.getLogger("transitions").level == logging.INFO
    assert logging.getLogger("sqlalchemy").level == logging.WARNING


def test_bridge_twice_does_not_duplicate(tmp_path):
    """bridge_stdlib called twice still forwards each stdlib record once."""
    configure(spec(), tmp_path)
    bridge_stdlib()
    bridge_stdlib()
    logging.getLogger("transitions.core").info("state changed")
    assert len(json_records(tmp_path)) == 1


def test_configure_twice_does_not_duplicate(tmp_path, capsys):
    """Configuring twice leaves one console, one file and one json sink."""
    configure(spec(console=True), tmp_path)
    configure(spec(console=True), tmp_path)
    logger.info("once only")
    assert capsys.readouterr().err.count("once only") == 1
    assert file_text(tmp_path).count("once only") == 1
    assert len(json_records(tmp_path)) == 1


def test_exception_traceback_hides_local_values(tmp_path, capsys):
    """logger.exception prints the traceback but no local variable values (diagnose off)."""
    configure(spec(console=True), tmp_path)

    def fail() -> None:
        """Raise with a sensitive local on the failing line."""
        secret = "mật-khẩu-4242"
        _ = 1 / (len(secret) - len(secret))

    try:
        fail()
    except ZeroDivisionError:
        logger.exception("could not apply")
    outputs = {"console": capsys.readouterr().err, "file": file_text(tmp_path)}
    (record,) = json_records(tmp_path)
    outputs["json"] = record["exception"]
    for where, text in outputs.items():
        assert "ZeroDivisionError" in text, where
        assert "4242" not in text, where
    assert record["message"] == "could not apply"


def test_event_logger_drops_none_values():
    """event_logger binds only the non-None fields, renaming from_ to from."""
    seen: list[dict] = []
    sink_id = logger.add(lambda m: seen.append(dict(m.record["extra"])), level="DEBUG")
    try:
        event_logger(instance="hd-9", from_="a", to=None, actor="ubnd").debug("x")
    finally:
        logger.remove(sink_id)
    assert seen == [{"instance": "hd-9", "from": "a", "actor": "ubnd"}]
    assert set(seen[0]) <= set(EVENT_FIELDS)
