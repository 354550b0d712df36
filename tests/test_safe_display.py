"""Stored values never drive the operator's terminal: no rich markup, no escape sequences, no forged lines.

Values come in through the CLI (markup and newlines pass the door; control characters do not) and,
for escape sequences, straight into the store (as an older release, or another writer, could have
left them). Every view that shows them — status, history, overview, upcoming, report md/html —
is run in-process as `coopflow` and its output read as the operator would see it.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from conftest import copy_shipped_policy
from sqlalchemy import select, update

from engine.store.database import SqlStore, instances
from engine.views.text import NEWLINE_MARK, clean, line

NOW = datetime.fromisoformat("2027-05-20T09:00:00+07:00")
MARKUP = "[/] [bold red]RED[/bold red] :thumbs_up:"
FORGED = "applied: forged line"
ESCAPES = "\x1b[2J\x1b]0;owned\x07\u202egnp\x9b31m"
VISIBLE = "\\x1b[2J\\x1b]0;owned\\x07\\u202egnp\\x9b31m"


def test_clean_escapes_controls_and_keeps_text():
    assert clean(ESCAPES) == VISIBLE
    assert clean("Xin thông tin thuê bao\tđợt 2") == "Xin thông tin thuê bao\\tđợt 2"
    assert clean("a\r\nb") == "a\\r\nb"
    assert line("a\nb") == f"a{NEWLINE_MARK}b"
    assert clean(None) == "" and clean(12) == "12" and clean("[b]x[/b]") == "[b]x[/b]"


@pytest.fixture
def config(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.delenv("COOPFLOW_STORE_URL", raising=False)
    config = copy_shipped_policy(tmp_path / "policy")
    db = tmp_path / "store.db"
    config.write_text(config.read_text(encoding="utf-8").replace("store: sqlite:///coopflow.db", f"store: sqlite:///{db}"),
                      encoding="utf-8")
    return config


def poison(config: Path, instance: str, field: str) -> str:
    """Append escape sequences to a stored field of `instance` (as if written before the door checked them)."""
    store = SqlStore(f"sqlite:///{config.parent.parent / 'store.db'}")
    try:
        with store.transaction() as conn:
            fields = conn.execute(select(instances.c.fields).where(instances.c.id == instance)).scalar_one()
            fields[field] = f"{fields[field]} {ESCAPES}"
            conn.execute(update(instances).where(instances.c.id == instance).values(fields=fields))
        return fields[field]
    finally:
        store.dispose()


@pytest.fixture
def built(cli_ok, coopflow_cli, config, stepped_clock) -> dict:
    """A request whose subject holds markup and a newline (then escape codes), a refusal naming markup,
    and a convened emergency meeting whose issue holds markup, HTML and escape codes."""
    ok = cli_ok
    stepped_clock.set(NOW)

    ok("init")
    request = ok("start", "information_exchange", "--as", "dic.focal_point", "--set", "requester=dic",
                 "--set", "recipient=police", "--set", f"subject={MARKUP}\n{FORGED}")
    code, out, err = coopflow_cli("fire", request, "send", "--as", "dic.focal_point", "--set", "[/]x[red]=1", "-c", config)
    assert code == 1 and "[/]x[red]" in out, out + err
    poison(config, request, "subject")
    meeting = ok("start", "emergency_review", "--as", "police.leader", "--set",
                 f"issue=<script>alert(1)</script> | {MARKUP}\n{FORGED}", "--set", "proposed_by=police")
    ok("fire", meeting, "agree", "--as", "police.leader")
    ok("fire", meeting, "agree", "--as", "dic.leader", "--set", "meeting_at=2027-05-27T14:00+07:00")
    poison(config, meeting, "issue")
    return {"request": request, "meeting": meeting}


def assert_inert(out: str, lines: bool = True) -> None:
    """Nothing in `out` a terminal would act on, and (with `lines`) no line forged by a stored newline."""
    assert not any(c in out for c in "\x1b\x07\x9b\u202e\r"), repr(out)
    assert not lines or not any(row.startswith(FORGED) for row in out.splitlines()), out  # inside a table cell it stays in it


def test_status_of_one_instance_shows_markup_and_escapes_literally(coopflow_cli, config, built):
    code, out, err = coopflow_cli("status", built["request"], "-c", config)
    assert code == 0, err
    assert f"subject = {MARKUP}{NEWLINE_MARK}{FORGED} {VISIBLE}" in out
    assert_inert(out)


def test_history_shows_a_refusal_naming_markup_literally(coopflow_cli, config, built):
    code, out, err = coopflow_cli("history", built["request"], "-c", config)
    assert code == 0, err
    assert "[/]x[red]" in out and "refused" in out
    assert_inert(out)


def test_workflow_listing_and_overview_with_markup_in_policy_titles(coopflow_cli, config, built):
    path = config.parent / "workflows" / "information_exchange.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("title: Dự thảo công văn yêu cầu", "title: \"[/] Dự thảo [bold]x\"", 1)
                    .replace("\ntitle: ", "\ntitle: \"[/] [red]clause\" #", 1), encoding="utf-8")
    code, out, err = coopflow_cli("status", "-c", config)
    assert code == 0, err
    assert "information_exchange — [/] [red]clause" in out
    assert_inert(out)
    code, out, err = coopflow_cli("status", "--workflow", "information_exchange", "-c", config)
    assert code == 0, err
    assert "drafted — [/] Dự thảo [bold]x" in out
    assert_inert(out)


def test_upcoming_shows_the_meeting_issue_on_one_line_of_its_cell(coopflow_cli, config, built):
    code, out, err = coopflow_cli("upcoming", "-c", config)
    assert code == 0, err
    assert "<script>alert(1)</script>" in out and "[/] [bold red]RED[/bold red]" in out and "\\x1b[2J" in out
    assert_inert(out)
    code, out, err = coopflow_cli("upcoming", "--json", "-c", config)
    meeting = next(i for i in json.loads(out) if i["kind"] == "meeting")
    assert ESCAPES in meeting["issue"]  # JSON keeps the stored value exactly (escaped by JSON itself)


def test_report_markdown_and_html_escape_the_stored_issue(coopflow_cli, config, built, tmp_path):
    code, md, err = coopflow_cli("report", "--period", "2027H1", "-c", config)
    assert code == 0, err
    row = next(r for r in md.splitlines() if r.startswith(f"| {built['meeting']} |"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt; \\| [/] [bold red]RED[/bold red]" in row and VISIBLE in row
    assert "<script>" not in md
    assert_inert(md)
    out = tmp_path / "r.html"
    code, _, err = coopflow_cli("report", "--period", "2027H1", "--format", "html", "--out", out, "-c", config)
    assert code == 0, err
    page = out.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page and VISIBLE in page
    assert_inert(page, lines=False)  # a newline inside an HTML cell is only white space
