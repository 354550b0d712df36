"""What operators read: instances, history and timers rendered as rich tables or JSON."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from engine.exceptions import CoopflowError
from engine.execution.runtime import Runtime
from engine.store.database import consents, instances, timers
from engine.store.database import history as history_table
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


def instance_rows(runtime: Runtime, workflow: str | None = None, state: str | None = None) -> list[dict[str, Any]]:
    """Instances with their next armed deadline, newest first."""
    with runtime.store.reading() as conn:
        query = select(instances).order_by(instances.c.created_at.desc(), instances.c.id)
        if workflow:
            query = query.where(instances.c.workflow == workflow)
        if state:
            query = query.where(instances.c.state == state)
        rows = [dict(r) for r in conn.execute(query).mappings()]
        due = {r.instance: r for r in conn.execute(select(timers).where(timers.c.status == "armed"))}
    for row in rows:
        timer = due.get(row["id"])
        row["deadline"] = {"due_at": timer.due_at, "fires": timer.trigger} if timer else None
    return rows


def status(runtime: Runtime, instance: str | None, workflow: str | None, state: str | None, as_json: bool) -> None:
    if instance:
        return _instance(runtime, instance, as_json)
    if not workflow and not state:
        from engine.views import overview

        return overview.show_overview(runtime, as_json)
    rows = instance_rows(runtime, workflow, state)
    if as_json:
        return _json([_public(runtime, r) for r in rows])
    table = Table(title=f"{len(rows)} instance(s)")
    for column in ("instance", "workflow", "state", "updated", "next deadline"):
        table.add_column(column)
    for r in rows:
        deadline = r["deadline"]
        table.add_row(cell(r["id"]), cell(r["workflow"]), cell(f"{r['state']} — {state_title(runtime, r['workflow'], r['state'])}"),
                      local(runtime, r["updated_at"]),
                      cell(f"{local(runtime, deadline['due_at'])} → {deadline['fires']}" if deadline else ""))
    _console().print(table)


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
        row = conn.execute(select(instances).where(instances.c.id == instance_id)).mappings().first()
        if row is None:
            raise CoopflowError(f"unknown instance '{instance_id}'")
        armed = conn.execute(select(timers).where(timers.c.instance == instance_id, timers.c.status == "armed")).mappings().first()
        agreed = [dict(r) for r in conn.execute(select(consents).where(consents.c.instance == instance_id)).mappings()]
    data = _public(runtime, {**row, "deadline": {"due_at": armed["due_at"], "fires": armed["trigger"]} if armed else None})
    data["consents"] = [{"trigger": c["trigger"], "party": c["party"], "actor": c["actor"], "at": c["at"].isoformat(),
                         "expires_at": c["expires_at"].isoformat() if c["expires_at"] else None} for c in agreed]
    if as_json:
        return _json(data)
    out = _console()
    head = cell(instance_id, single_line=True)
    head.stylize("bold")
    out.print(join(head, f"  {line(data['workflow'])} (version {line(data['version'])})"))
    out.print(cell(f"state: {data['state']} — {data['state_title']}{' (final)' if data['final'] else ''}", single_line=True))
    if armed:
        out.print(cell(f"deadline: {local(runtime, armed['due_at'])} → fires {armed['trigger']}", single_line=True))
    for c in agreed:
        out.print(cell(f"consent to {c['trigger']}: {c['party']} ({c['actor']}, {local(runtime, c['at'])})", single_line=True))
    for name, value in data["fields"].items():
        if value not in (None, "", []):
            out.print(cell(f"  {name} = {value}", single_line=True))


def history_rows(runtime: Runtime, instance_id: str) -> list[dict[str, Any]]:
    with runtime.store.reading() as conn:
        return [dict(r) for r in conn.execute(select(history_table).where(history_table.c.instance == instance_id).order_by(history_table.c.seq)).mappings()]


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
