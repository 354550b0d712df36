"""`coopflow deliveries`: list notification deliveries, queue dead letters again."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.table import Table

from engine.cli.language import _
from engine.cli.main import CONFIG_OPTION, _runtime
from engine.notify import channels
from engine.notify import deliveries as store_deliveries


@click.group(invoke_without_command=True)
@click.option("--status", type=click.Choice(store_deliveries.STATUSES), default=None, help="Only deliveries in this status.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@CONFIG_OPTION
@click.pass_context
def deliveries(ctx: click.Context, status: str | None, as_json: bool, config_path: str | None) -> None:
    """List e-mail and webhook deliveries (pending, sending, sent, dead)."""
    if ctx.invoked_subcommand is not None:
        return
    runtime = _runtime(config_path)
    try:
        rows = store_deliveries.listing(runtime.store, status)
    finally:
        runtime.store.dispose()
    notifications = runtime.policy.config.notifications
    sender = notifications.smtp.sender if notifications and notifications.smtp else "coopflow@localhost"
    tz = runtime.policy.tz
    items = [{
        "id": r.id, "status": r.status, "channel": r.channel, "kind": r.kind, "instance": r.instance,
        "recipient": r.recipient, "address": r.address, "subject": r.message["subject"], "attempts": r.attempts,
        "next_at": r.next_at.astimezone(tz).isoformat(), "sent_at": r.sent_at.astimezone(tz).isoformat() if r.sent_at else None,
        "last_error": r.last_error,
        "message_id": channels.message_id(r.id, r.key, sender) if r.channel == channels.EMAIL else None,
    } for r in rows]
    if as_json:
        click.echo(json.dumps(items, ensure_ascii=False, indent=1))
        return
    if not items:
        click.echo(_("no deliveries with status %(status)s", status=status) if status else _("no deliveries"))
        return
    table = Table(title=_("%(n)s deliveries", n=len(items)))
    for column in ("id", _("status"), _("channel"), _("recipient"), _("address"), _("subject"), _("attempts"),
                   _("when / last error")):
        table.add_column(column)
    for i in items:
        when = i["sent_at"] if i["status"] == store_deliveries.SENT else (i["last_error"] or i["next_at"])
        table.add_row(str(i["id"]), i["status"], i["channel"], i["recipient"], i["address"], i["subject"], str(i["attempts"]), when)
    Console(soft_wrap=True).print(table)


@deliveries.command()
@click.argument("delivery_id", metavar="ID", type=int, required=False)
@click.option("--all-dead", is_flag=True, help="Queue every dead letter again.")
@CONFIG_OPTION
def retry(delivery_id: int | None, all_dead: bool, config_path: str | None) -> None:
    """Queue a dead letter (ID) or all of them (--all-dead) for sending again."""
    if (delivery_id is None) == (not all_dead):
        raise click.UsageError(_("give a delivery ID or --all-dead (not both)"))
    runtime = _runtime(config_path)
    try:
        count = store_deliveries.retry(runtime.store, delivery_id)
    finally:
        runtime.store.dispose()
    if delivery_id is not None and count == 0:
        click.echo(_("error: delivery #%(id)s is not a dead letter (see `coopflow deliveries --status dead`)", id=delivery_id),
                   err=True)
        sys.exit(1)
    click.echo(_("%(n)s dead letter(s) queued again; a running daemon sends them", n=count))
