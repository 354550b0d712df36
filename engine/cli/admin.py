"""The administrator's commands on the machine that holds the store: check, init, run, serve,
simulate, schema, inbox, audit verify, diagram, report.

They read the policy and open the store directly (never through a server): parse → call the
service layer (engine/service.py) or the policy → render.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import cast

import click

from engine.cli import language
from engine.cli.language import _
from engine.cli.main import CONFIG_OPTION, deployment
from engine.exceptions import CoopflowError
from engine.policy.loader import load_policy
from engine.policy.schema import SCHEMAS, render
from engine.store.statuses import EventKind, InboxStatus
from engine.views.text import line


def _policy(config_path: str | None, cache: bool = False):
    """The policy of a command that reads no store; the CLI then speaks its `cli.language` (unless the locale chose)."""
    policy = load_policy(config_path, cache=cache)
    language.settle_from_config(policy.config.cli.language)
    return policy


@click.command()
@CONFIG_OPTION
def check(config_path: str | None) -> None:
    """Validate the policy; print every problem as file:line:col: message."""
    policy = _policy(config_path, cache=True)  # unchanged files are not parsed again (engine.policy.cache)
    if policy.report_templates is not None:  # the report's modules (and SQLAlchemy) only for a policy with templates
        from engine.views.report import html as report_html

        for problem in report_html.problems(policy):  # the review report's templates render on a sample report
            raise click.ClickException(line(problem))
    for warning in policy.warnings:  # not errors: the policy is valid (docs/policy.md §9)
        click.echo(line(_("%(file)s:%(line)s:%(col)s: warning: %(message)s", file=warning.file, line=warning.line,
                          col=warning.col, message=warning.message)), err=True)
    click.echo(_("ok: %(workflows)s workflows, %(schedules)s schedules, %(rules)s event rules; policy %(digest)s",
                 workflows=len(policy.workflows), schedules=len(policy.schedules), rules=len(policy.event_rules),
                 digest=policy.digest[:12]))


@click.command()
@CONFIG_OPTION
def init(config_path: str | None) -> None:
    """Create the store named by the config (the only command but `run` that may create one)."""
    with deployment(config_path, create=True) as d:
        store = d.runtime.store
        click.echo(_("ok: store %(store)s at schema %(schema)s", store=repr(store), schema=store.meta_value("schema_version")))


@click.command()
@CONFIG_OPTION
def run(config_path: str | None) -> None:
    """Run the daemon in the foreground until SIGTERM or SIGINT (systemd-friendly)."""
    from engine.scheduling.daemon import Daemon

    sys.exit(Daemon(config_path).run())


@click.command()
@CONFIG_OPTION
@click.option("--host", default=None, help="Address to listen on (default: config http.host).")
@click.option("--port", default=None, type=click.IntRange(0, 65535), help="Port (default: config http.port).")
def serve(config_path: str | None, host: str | None, port: int | None) -> None:
    """Serve the HTTP API only (no daemon) against the configured store, e.g. extra processes behind a proxy."""
    import uvicorn

    from engine.server.app import create_app
    from engine.service import Deployment

    d = Deployment.open(config_path)
    http = d.policy.config.http
    host, port = host or http.host, http.port if port is None else port
    url = f"http://{host}:{port}/api/v1"
    click.echo(_("serving the HTTP API on %(url)s", url=url), err=True)
    uvicorn.run(create_app(d), host=host, port=port, log_config=None, access_log=False, server_header=False,
                proxy_headers=True, forwarded_allow_ips="127.0.0.1")


MAX_SIMULATED_YEARS = 100


@click.command()
@CONFIG_OPTION
@click.option("--from", "start", required=True, metavar="DATE", help="First day (YYYY-MM-DD) or instant (ISO 8601).")
@click.option("--to", "end", required=True, metavar="DATE", help="Last day (inclusive) or instant.")
@click.option("--events", "events_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="YAML or JSON list of scripted starts and fires to play.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array instead of a table.")
def simulate(config_path: str | None, start: str, end: str, events_file: str | None, as_json: bool) -> None:
    """Run the policy against a virtual clock in a throwaway store and print the timeline."""
    from loguru import logger

    from engine.scheduling.simulate import Simulator, load_events, timeline_json

    policy = _policy(config_path)
    logger.remove()  # a simulation must not write into the operators' logs
    first, last = _day_bound(start, policy.tz, end=False), _day_bound(end, policy.tz, end=True)
    if last <= first:
        raise click.BadParameter(_("--to must be after --from"), param_hint="--to")
    if last - first > timedelta(days=366 * MAX_SIMULATED_YEARS):
        raise click.BadParameter(_("simulate at most %(n)s years at once", n=MAX_SIMULATED_YEARS), param_hint="--to")
    events = load_events(events_file, policy) if events_file else []
    entries = Simulator(policy, first, last, events).run()
    if as_json:
        click.echo(timeline_json(entries))
    else:
        from engine.views import render as views

        views.timeline(policy, entries)


def _day_bound(text: str, tz, end: bool):
    from datetime import datetime, time

    from engine.views.report import MAX_YEAR, MIN_YEAR

    hint = "--to" if end else "--from"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(_("%(text)s is not a date (YYYY-MM-DD) or ISO 8601 instant", text=repr(line(text))),
                                 param_hint=hint) from None
    if not MIN_YEAR <= moment.year <= MAX_YEAR:
        raise click.BadParameter(_("%(text)s: the year must be between %(min)s and %(max)s", text=text, min=MIN_YEAR,
                                   max=MAX_YEAR), param_hint=hint)
    if len(text) <= 10:
        moment = datetime.combine(moment.date() + timedelta(days=1 if end else 0), time(0), tzinfo=tz)
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


@click.command()
@click.argument("kind", type=click.Choice(sorted(SCHEMAS)), default="workflow")
def schema(kind: str) -> None:
    """Print the JSON Schema (draft-07) of a policy file kind, for editors."""
    click.echo(render(kind), nl=False)


# --------------------------------------------------------------------------- the inbox


@click.group("inbox", invoke_without_command=True)
@click.option("--status", "statuses", multiple=True, type=click.Choice([*map(str, InboxStatus), "all"]),
              help="Only events with this status (repeatable; default: pending and refused).")
@click.option("--instance", default=None, help="Only events of this instance.")
@click.option("--workflow", "-w", default=None, help="Only events of this workflow.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1), help="At most this many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@CONFIG_OPTION
@click.pass_context
def inbox_cmd(ctx, statuses: tuple[str, ...], instance: str | None, workflow: str | None, limit: int, as_json: bool,
              config_path: str | None) -> None:
    """List queued events: pending, and refused ones (dead letters) with the reason."""
    if ctx.invoked_subcommand is not None:
        return
    import json

    from engine.cli.tables import console, grid, local

    chosen = tuple(map(str, InboxStatus)) if "all" in statuses else (statuses or (InboxStatus.PENDING, InboxStatus.REFUSED))
    with deployment(config_path) as d:
        rows = d.queued(tuple(chosen), instance=instance, workflow=workflow, limit=limit)
        tz = d.policy.tz
    if as_json:
        for r in rows:
            click.echo(json.dumps({"id": r["id"], "key": r["key"], "kind": r["kind"], "instance": r["instance"],
                                   "workflow": r["workflow"], "trigger": r["trigger"], "actor": r["actor"],
                                   "values": r["payload"].get("set", {}), "status": r["status"], "outcome": r["outcome"],
                                   "submitted_at": r["submitted_at"].astimezone(tz).isoformat(),
                                   "applied_at": r["applied_at"].astimezone(tz).isoformat() if r["applied_at"] else None},
                                  ensure_ascii=False))
        return
    if not rows:
        click.echo(_("no %(statuses)s events", statuses=_(" or ").join(chosen)))
        return
    cells = [(str(r["id"]), local(r["submitted_at"], tz),
              f"start {r['workflow']}" if r["kind"] == EventKind.START else f"{r['kind']} {r['trigger']}", r["instance"],
              r["actor"], r["status"], language.voice().outcome(r["outcome"] or "")) for r in rows]
    console().print(grid(_("inbox"), ("#", _("submitted"), _("event"), _("instance"), _("actor"), _("status"), _("outcome")),
                         cells))


@inbox_cmd.command("cancel")
@click.argument("inbox_id", type=int, metavar="ID")
@click.option("--as", "actor", required=True, metavar="ACTOR", help="Who cancels: only an administrator (system).")
@CONFIG_OPTION
def inbox_cancel(inbox_id: int, actor: str, config_path: str | None) -> None:
    """Cancel pending event ID: it is never applied; history records who cancelled it."""
    import getpass

    from engine.rules.actors import parse_actor
    from engine.store import inbox

    with deployment(config_path) as d:
        if not parse_actor(actor, d.policy.config).is_system:
            raise CoopflowError(_("only an administrator may cancel queued events: use --as system"))
        row = d.cancel_queued(inbox_id, f"system ({getpass.getuser()})")
    click.echo(_("cancelled: inbox #%(id)s (%(event)s)", id=inbox_id,
                 event=inbox.describe({**row, "outcome": None, "status": "was pending"})))


# --------------------------------------------------------------------------- audit


@click.group()
def audit() -> None:
    """Check the tamper-evident history."""


@audit.command()
@CONFIG_OPTION
@click.option("--anchors", "extra_anchors", multiple=True, type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="Also check these anchor files or JSON logs (e.g. copies shipped to another host); repeatable.")
def verify(config_path: str | None, extra_anchors: tuple[str, ...]) -> None:
    """Verify the history (chain, anchors) and that the state follows from it; exit 1 naming the first mismatch."""
    with deployment(config_path) as d:
        report = d.audit(extra_anchors)
    if not report.ok:
        more = _(" (and %(n)s more)", n=len(report.problems) - 1) if len(report.problems) > 1 else ""
        click.echo(_("TAMPERED: %(problem)s", problem=report.problems[0]) + more, err=True)
        sys.exit(1)
    legacy = _("; %(n)s instances from before the audit record checked by state only", n=report.legacy) if report.legacy else ""
    click.echo(_("ok: %(rows)s history rows, chain intact; %(anchors)s anchors match; state follows from the history "
                 "(%(instances)s instances, %(consents)s consents, %(timers)s armed timers, %(occurrences)s schedule "
                 "occurrences)", rows=report.rows, anchors=report.anchors, instances=report.instances,
                 consents=report.consents, timers=report.timers, occurrences=report.occurrences) + legacy)


# --------------------------------------------------------------------------- diagrams and reports


@click.command()
@click.argument("workflow", required=False)
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True,
              help="Mermaid stateDiagram-v2 (renders on the forge) or Graphviz DOT.")
@click.option("--out", "out", default=None, metavar="PATH", help="Write to this file (with --all: this folder).")
@click.option("--all", "all_", is_flag=True, help="Every workflow, one file each (<id>.mmd or <id>.dot) under --out.")
@CONFIG_OPTION
def diagram(workflow: str | None, fmt: str, out: str | None, all_: bool, config_path: str | None) -> None:
    """Draw the state diagram of WORKFLOW (or of every workflow with --all)."""
    from engine.views.diagram import FORMATS

    if all_ == bool(workflow):
        raise click.UsageError(_("give a WORKFLOW or --all (not both)"))
    if all_ and not out:
        raise click.UsageError(_("--all needs --out DIR"))
    policy = _policy(config_path)
    draw = FORMATS[fmt]
    if all_:
        folder = Path(out or ".")
        folder.mkdir(parents=True, exist_ok=True)
        for wid, spec in sorted(policy.workflows.items()):
            (folder / f"{wid}.{'mmd' if fmt == 'mermaid' else 'dot'}").write_text(draw(spec), encoding="utf-8")
        click.echo(_("wrote %(n)s diagram(s) to %(folder)s", n=len(policy.workflows), folder=folder))
        return
    found = policy.workflows.get(workflow or "")
    if found is None:
        raise CoopflowError(_("unknown workflow '%(workflow)s'; workflows: %(known)s", workflow=workflow,
                              known=", ".join(sorted(policy.workflows))))
    text = draw(found)
    if out:
        Path(out).write_text(text, encoding="utf-8")
        click.echo(_("wrote %(path)s", path=out))
    else:
        click.echo(text, nl=False)


@click.command()
@click.option("--period", default=None, metavar="YYYYQn|YYYYHn|YYYY",
              help="Quarter (2027Q4), half year (2027H1) or year (2027) in the policy's time zone "
                   "(default: the current period of the agreement's review cadence).")
@click.option("--from", "first", default=None, metavar="DATE", help="First day of the period (YYYY-MM-DD), with --to.")
@click.option("--to", "last", default=None, metavar="DATE", help="Last day of the period (YYYY-MM-DD, included), with --from.")
@click.option("--format", "fmt", type=click.Choice(["md", "html", "pdf", "docx"]), default="md", show_default=True,
              help="Markdown (for the forge), a printable HTML file, a PDF or a Word document (pdf and docx need --out), "
                   "in the official layout.")
@click.option("--out", "-o", default=None, metavar="FILE", help="Write to FILE instead of standard output.")
@CONFIG_OPTION
def report(period: str | None, first: str | None, last: str | None, fmt: str, out: str | None, config_path: str | None) -> None:
    """Write the review report for a quarter, half year, year or date range, from the recorded history."""
    from engine import clock
    from engine.service import Deployment
    from engine.views import report as reports

    if (period is not None and (first or last)) or (first is None) != (last is None):
        raise click.UsageError(_("give either --period or both --from and --to (neither: the review cadence's current period)"))
    if fmt in ("pdf", "docx") and not out:
        raise click.UsageError(_("--format %(format)s writes a file: give --out FILE", format=fmt))
    policy = _policy(config_path)
    if period is None and first is None:
        period = reports.cadence_label(policy, clock.now())
    try:
        chosen = reports.of_policy(policy, period=period, first=first, last=last, now=clock.now())
    except reports.PeriodRefused:
        raise
    except reports.PeriodError as exc:
        raise click.BadParameter(str(exc), param_hint="--period" if period else "--from/--to") from None
    with Deployment.open(policy=policy) as d:
        text = cast("str | bytes", reports.FORMATS[fmt](d.report(chosen)))  # md/html text, pdf/docx bytes
    if out:
        Path(out).write_bytes(text) if isinstance(text, bytes) else Path(out).write_text(text, encoding="utf-8")
        click.echo(_("wrote %(path)s", path=out))
    else:
        click.echo(text, nl=False)
