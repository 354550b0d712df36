"""What operators read: instances, history, the overview and what is upcoming, rendered as rich tables or JSON."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from engine.exceptions import CoopflowError
from engine.execution.runtime import Runtime
from engine.rules import consent
from engine.store import reads
from engine.views import overview
from engine.views.text import cell, join, line


def _console() -> Console:
    return Console(file=sys.stdout, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


def local(runtime: Runtime, moment: datetime | None) -> str | None:
    """An instant in the agreement's time zone, to the minute, for people to read."""
    return moment.astimezone(runtime.policy.tz).strftime("%Y-%m-%d %H:%M") if moment else None


def _json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def state_title(runtime: Runtime, workflow: str, state: str) -> str:
    spec = runtime.policy.workflows.get(workflow)
    st = spec.states.get(state) if spec else None
    return st.title if st else state


def _more(shown_from: int, shown: int, total: int, command: str, page: int, limit: int) -> str | None:
    """The line under a page that says what the page holds and how to see the rest (None when all is shown)."""
    if total <= shown and shown_from == 0:
        return None
    if shown == 0:
        return f"page {page} is past the end ({total:,} in all): coopflow {command} --page 1"
    text = f"showing {shown_from + 1:,}–{shown_from + shown:,} of {total:,}"
    if shown_from + shown < total:
        text += f"; next: coopflow {command} --page {page + 1} (or --limit N, at most {overview.MAX_LIMIT})"
    return text


def status(runtime: Runtime, instance: str | None, workflow: str | None, state: str | None, as_json: bool,
           limit: int = overview.DEFAULT_LIMIT, page: int = 1) -> None:
    if instance:
        return _instance(runtime, instance, as_json)
    if not workflow and not state:
        return show_overview(runtime, as_json, limit, page)
    limit, offset = overview.page_bounds(limit, page)
    with runtime.store.reading() as conn:
        total = reads.instance_count(conn, workflow, state)
        rows = reads.instance_list(conn, workflow, state, limit, offset)
    filters = " ".join([*(["--workflow", workflow] if workflow else []), *(["--state", state] if state else [])])
    more = _more(offset, len(rows), total, f"status {filters}", page, limit)
    if as_json:
        if more:
            click.echo(line(more), err=True)
        return _json([_public(runtime, r) for r in rows])
    table = Table(title=f"{total:,} instance(s)")
    for column in ("instance", "workflow", "state", "updated", "next deadline"):
        table.add_column(column)
    for r in rows:
        deadline = r["deadline"]
        table.add_row(cell(r["id"]), cell(r["workflow"]), cell(f"{r['state']} — {state_title(runtime, r['workflow'], r['state'])}"),
                      local(runtime, r["updated_at"]),
                      cell(f"{local(runtime, deadline['due_at'])} → {deadline['fires']}" if deadline else ""))
    out = _console()
    out.print(table)
    if more:
        out.print(cell(more))


def _public(runtime: Runtime, row: dict[str, Any]) -> dict[str, Any]:
    deadline = row.get("deadline")
    return {
        "instance": row["id"], "workflow": row["workflow"], "version": row["version"], "state": row["state"],
        "state_title": state_title(runtime, row["workflow"], row["state"]), "final": bool(row["final"]),
        "fields": row["fields"], "created_at": row["created_at"].isoformat(), "updated_at": row["updated_at"].isoformat(),
        "deadline": {"due_at": deadline["due_at"].isoformat(), "fires": deadline["fires"]} if deadline else None,
    }


def _instance(runtime: Runtime, instance_id: str, as_json: bool) -> None:
    with runtime.store.reading() as conn:
        row = reads.instance(conn, instance_id)
    if row is None:
        raise CoopflowError(f"unknown instance '{instance_id}'")
    agreed = row["consents"]
    data = _public(runtime, row)
    data["consents"] = [{"trigger": c["trigger"], "party": c["party"], "actor": c["actor"], "at": c["at"].isoformat(),
                         "expires_at": c["expires_at"].isoformat() if c["expires_at"] else None} for c in agreed]
    spec = runtime.policy.workflows.get(row["workflow"])
    data["awaiting_consent"] = consent.awaiting(spec, row["state"], row["fields"], runtime.policy.config,
                                                [(c["trigger"], c["party"]) for c in agreed]) if spec else {}
    if as_json:
        return _json(data)
    out = _console()
    head = cell(instance_id, single_line=True)
    head.stylize("bold")
    out.print(join(head, f"  {line(data['workflow'])} (version {line(data['version'])})"))
    out.print(cell(f"state: {data['state']} — {data['state_title']}{' (final)' if data['final'] else ''}", single_line=True))
    if row["deadline"]:
        out.print(cell(f"deadline: {local(runtime, row['deadline']['due_at'])} → fires {row['deadline']['fires']}", single_line=True))
    for c in agreed:
        out.print(cell(f"consent to {c['trigger']}: {c['party']} ({c['actor']}, {local(runtime, c['at'])})", single_line=True))
    for trigger, parties in data["awaiting_consent"].items():
        if parties:
            out.print(cell(f"consent to {trigger} still needed from: {', '.join(parties)}", single_line=True))
    for name, value in data["fields"].items():
        if value not in (None, "", []):
            out.print(cell(f"  {name} = {value}", single_line=True))


def history_rows(runtime: Runtime, instance_id: str) -> list[dict[str, Any]]:
    with runtime.store.reading() as conn:
        return reads.instance_history(conn, instance_id)


def history(runtime: Runtime, instance_id: str, as_json: bool) -> None:
    rows = history_rows(runtime, instance_id)
    if not rows:
        raise CoopflowError(f"no history for instance '{instance_id}'")
    if as_json:
        for r in rows:
            click.echo(json.dumps({**r, "at": r["at"].isoformat()}, ensure_ascii=False, default=str))
        return
    table = Table(title=cell(f"history of {instance_id}", single_line=True))
    for column in ("#", "at", "event", "actor", "from", "to", "outcome"):
        table.add_column(column)
    for r in rows:
        outcome = r["outcome"] + (f": {r['reason']}" if r["reason"] else "")
        table.add_row(str(r["seq"]), local(runtime, r["at"]), cell(f"{r['kind']} {r['trigger'] or ''}".strip()), cell(r["actor"]),
                      cell(r["from_state"]), cell(r["to_state"]), cell(outcome))
    _console().print(table)


def timeline(policy, entries) -> None:
    """The simulator's timeline as a table."""
    table = Table(title=f"{len(entries)} event(s) simulated")
    for column in ("at", "kind", "workflow", "instance", "event", "outcome"):
        table.add_column(column)
    for e in entries:
        host = f" (host {e.host})" if e.host else ""
        table.add_row(cell(e.at[:16].replace("T", " ")), cell(e.kind), cell(e.workflow), cell(e.instance), cell(e.trigger or "start"),
                      cell(f"{e.outcome}: {e.detail}{host}"))
    _console().print(table)


# --------------------------------------------------------------------------- overview and upcoming


def show_overview(runtime: Runtime, as_json: bool, limit: int = overview.DEFAULT_LIMIT, page: int = 1) -> None:
    """`coopflow status` without filters: counts per clause and state, then one page of the overdue
    instances and of each party's next steps, with a line saying how to see the next page."""
    data = overview.build_overview(runtime.store, runtime.policy, limit=limit, page=page)
    if as_json:
        return _json(data)
    out = _console()
    table = Table(title=f"open instances per clause: {data['open_total']:,} (at {data['now'][:16].replace('T', ' ')})")
    for column in ("clause", "workflow", "state", "open", "overdue"):
        table.add_column(column, justify="right" if column in ("open", "overdue") else "left")
    for c in data["workflows"]:
        table.add_row(*map(cell, (c["clause"], f"{c['workflow']} — {c['title']}", "", f"{c['open']:,}", f"{c['overdue']:,}")))
        for s in c["states"]:
            table.add_row(*map(cell, ("", "", f"{s['state']} — {s['title']}", f"{s['open']:,}", f"{s['overdue']:,}")))
    out.print(table)
    paging = data["page"]
    offset = (paging["page"] - 1) * paging["limit"]
    if data["overdue_total"]:
        late = Table(title=f"{data['overdue_total']:,} overdue instance(s)")
        for column in ("instance", "workflow", "state", "why"):
            late.add_column(column)
        for o in data["overdue"]:
            late.add_row(*map(cell, (o["instance"], o["workflow"], f"{o['state']} — {o['state_title']}",
                                     "; ".join(r["text"] for r in o["reasons"]))))
        out.print(late)
    owes = Table(title="who owes the next step")
    for column in ("party", "instance", "workflow", "state", "since", "may fire"):
        owes.add_column(column)
    for p in data["parties"]:
        if not p["next_steps"]:
            owes.add_row(cell(p["party"]), "—" if not p["open"] else f"({p['open']:,} in all)", "", "", "", "")
        for i, step in enumerate(p["next_steps"]):
            party = (f"{p['party']} ({p['open']:,})" if p["open"] > len(p["next_steps"]) else p["party"]) if i == 0 else ""
            owes.add_row(*map(cell, (party, step["instance"] + (" (overdue)" if step["overdue"] else ""),
                                     step["workflow"], f"{step['state']} — {step['state_title']}",
                                     step["since"][:16].replace("T", " "), ", ".join(step["triggers"]))))
    out.print(owes)
    longest = max([data["overdue_total"], *(p["open"] for p in data["parties"])])
    shown = max([len(data["overdue"]), *(len(p["next_steps"]) for p in data["parties"])])
    more = _more(offset, shown, longest, "status", paging["page"], paging["limit"])
    if more:
        out.print(cell(f"lists per page: {more}"))
    if data["dead_letters"]:
        out.print(f"{data['dead_letters']} notification(s) could not be delivered: coopflow deliveries --status dead")


def show_upcoming(runtime: Runtime, days: int, as_json: bool, limit: int = overview.UPCOMING_LIMIT, page: int = 1) -> None:
    """`coopflow upcoming`: one page of a table sorted by time, in the policy's time zone."""
    limit, offset = overview.page_bounds(limit, page)
    data = overview.upcoming_page(runtime.store, runtime.policy, days, limit=limit, offset=offset)
    items = data["items"]
    more = _more(offset, len(items), data["total"], f"upcoming --days {days}", page, limit)
    if as_json:
        if more:
            click.echo(line(more), err=True)
        return _json(items)
    table = Table(title=f"{data['total']:,} item(s) in the next {days} day(s) ({runtime.policy.tz.key})")
    for column in ("at", "what", "workflow", "instance", "details"):
        table.add_column(column)
    for item in items:
        at = item["at"][:16].replace("T", " ")
        subject = f"{item['subject']} — " if item.get("subject") else ""
        if item["kind"] == "schedule":
            table.add_row(*map(cell, (at, "schedule", item["workflow"], "",
                                      f"{item['title']}" + (f" — host {item['host']}" if item["host"] else ""))))
        elif item["kind"] == "deadline":
            late = "OVERDUE " if item["overdue"] else ""
            table.add_row(*map(cell, (at, f"{late}deadline", item["workflow"], item["instance"],
                                      f"{subject}{item['state']} — {item['state_title']}: fires {item['trigger']}")))
        else:
            when = "" if item["meeting_at_set"] else f" (no time set: {item['time_rule']})"
            table.add_row(*map(cell, (at, "meeting", item["workflow"], item["instance"],
                                      f"{item['title']}: {item['subject'] or ''}{when}")))
    out = _console()
    out.print(table)
    if more:
        out.print(cell(more))
