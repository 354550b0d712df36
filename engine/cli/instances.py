"""The instance commands: start, fire, consent, withdraw, status, history, tasks, upcoming.

Each is parse → call → render: the call goes to the HTTP API when the command runs against a
server (engine/cli/client.py; the caller acts as the person their token names, in `--role`),
otherwise to the service layer on this machine's store (`--as` names the actor: the
administrator's local mode). Both render through engine/cli/tables.py, so the output and the
exit codes are the same: 0 applied, 1 refused or pending (the reason on stdout), 2 usage.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from engine.cli import tables
from engine.cli.client import ClientError, Remote, remote
from engine.cli.complete import instance_ids, trigger_names, workflow_ids
from engine.cli.language import _, voice
from engine.cli.main import CONFIG_OPTION, Settings, deployment

AS_OPTION = click.option("--as", "actor", default=None, metavar="ACTOR",
                         help="Local mode only: who acts, party.role or party.role:person (e.g. police.leader).")
ROLE_OPTION = click.option("--role", default=None, metavar="ROLE",
                           help="Against a server: which of your roles you act in (party.role, or a role of one party).")
SET_OPTION = click.option("--set", "pairs", multiple=True, metavar="NAME=VALUE", help="Set a field (repeatable).")
KEY_OPTION = click.option("--key", default=None, metavar="KEY",
                          help="Idempotency key: the same request again under it applies once and shows the first outcome; "
                               "a different request under it is refused.")
WAIT_OPTION = click.option("--wait", default=30.0, show_default=True, metavar="SECONDS",
                           help="Local mode: how long to wait for a running daemon to apply the event.")
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")


def _values(pairs: tuple[str, ...]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(_("expected NAME=VALUE, got %(pair)s", pair=repr(pair)), param_hint="--set")
        values[name.strip()] = value
    return values


def _server(actor: str | None = None) -> Remote | None:
    return remote(Settings.of(), actor)


def _local_actor(actor: str | None) -> str:
    if actor is None:
        raise click.UsageError(_("Missing option '--as' (who acts; or log in to a server: coopflow login --server URL)"))
    return actor


def _outcome(status: str, text: str, instance: str | None = None, warning: str | None = None) -> None:
    """Print the outcome (after the new instance's id), exit 0 when applied, 1 when refused or pending;
    a warning (the daemon runs on another store) goes to stderr."""
    from engine.views.text import line

    if instance:
        click.echo(instance)
    click.echo(line(voice().outcome(text)))
    if warning:
        click.echo(_("warning: %(what)s", what=line(warning)), err=True)
    sys.exit(0 if status == "applied" else 1)


def _post(server: Remote, path: str, body: dict[str, Any], key: str | None, show_instance: bool) -> None:
    """A write through the API; a refusal (409) prints like a local one: the reason on stdout, exit 1."""
    try:
        answer = server.call("POST", path, body=body, key=key)
    except ClientError as exc:
        if exc.kind != "refused":
            raise
        _outcome("refused", str(exc), exc.problem.get("instance") if show_instance else None)
    _outcome(answer["status"], answer["text"], answer["instance"] if show_instance else None)


def _event_options(command):
    """The options of an event from the command line: --as, --role, --set, --key, --wait, -c."""
    for option in reversed((AS_OPTION, ROLE_OPTION, SET_OPTION, KEY_OPTION, WAIT_OPTION, CONFIG_OPTION)):
        command = option(command)
    return command


@click.command()
@click.argument("workflow", shell_complete=workflow_ids)
@_event_options
def start(workflow: str, actor: str | None, role: str | None, pairs: tuple[str, ...], key: str | None, wait: float,
          config_path: str | None) -> None:
    """Start a new instance of WORKFLOW; prints its id, then the outcome."""
    values = _values(pairs)
    server = _server(actor)
    if server:
        return _post(server, "/instances", {"workflow": workflow, "values": values, "role": role}, key, True)
    with deployment(config_path) as d:
        result = d.start(workflow, _local_actor(actor), values, key, wait=wait)
    _outcome(result.status, result.text, result.instance, result.warning)


def _event(instance: str, trigger: str, actor: str | None, role: str | None, pairs: tuple[str, ...], key: str | None,
           wait: float, withdraw: bool, config_path: str | None) -> None:
    values = _values(pairs)
    if withdraw and values:
        raise click.UsageError(_("a withdrawal carries no --set values"))
    server = _server(actor)
    if server:
        from urllib.parse import quote

        body = {"trigger": trigger, "values": values, "withdraw": withdraw, "role": role}
        return _post(server, f"/instances/{quote(instance, safe='')}/events", body, key, False)
    with deployment(config_path) as d:
        if withdraw:
            result = d.withdraw(instance, trigger, _local_actor(actor), key, wait=wait)
        else:
            result = d.fire(instance, trigger, _local_actor(actor), values, key, wait=wait)
    _outcome(result.status, result.text, warning=result.warning)


def _event_command(name: str, doc: str, with_withdraw_flag: bool, withdraw: bool = False):
    """fire, consent and withdraw: one event on one instance, with the same options."""

    @click.command(name, help=doc)
    @click.argument("instance", shell_complete=instance_ids)
    @click.argument("trigger", shell_complete=trigger_names)
    @_event_options
    def command(instance, trigger, actor, role, pairs, key, wait, config_path, withdraw_flag=False):
        _event(instance, trigger, actor, role, pairs, key, wait, withdraw or withdraw_flag, config_path)

    if with_withdraw_flag:
        command = click.option("--withdraw", "withdraw_flag", is_flag=True,
                               help="Withdraw the actor's party's consent to TRIGGER instead.")(command)
    return command


fire = _event_command("fire", "Fire TRIGGER on INSTANCE (or give consent, when the transition needs approvals).", True)
consent = _event_command("consent", "Give your party's consent to TRIGGER on INSTANCE (the same as fire).", False)
withdraw = _event_command("withdraw", "Withdraw your party's consent to TRIGGER on INSTANCE.", False, withdraw=True)


def _pages(server: Remote, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every item of a paginated listing, following `next_cursor`."""
    items, cursor = [], None
    while True:
        page = server.call("GET", path, params={**params, "cursor": cursor})
        items.extend(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            return items


def _page(server: Remote, path: str, params: dict[str, Any], page: int) -> tuple[list[dict[str, Any]], int]:
    """Page `page` (1-based) of a cursor-paginated listing, and how many items it has in all."""
    cursor, total = None, 0
    for number in range(1, page + 1):
        answer = server.call("GET", path, params={**params, "cursor": cursor})
        cursor, total = answer.get("next_cursor"), answer["total"]
        if number == page:
            return answer["items"], total
        if not cursor:
            break
    return [], total


LIMIT_OPTION = click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000), metavar="N",
                            help="At most N rows per list (the counts always cover everything).")
PAGE_OPTION = click.option("--page", default=1, show_default=True, type=click.IntRange(1, 1_000_000), metavar="P",
                           help="Show page P of the lists.")


@click.command()
@click.argument("instance", required=False, shell_complete=instance_ids)
@click.option("--workflow", "-w", default=None, shell_complete=workflow_ids, help="Only instances of this workflow.")
@click.option("--state", "-s", default=None, help="Only instances in this state.")
@LIMIT_OPTION
@PAGE_OPTION
@ROLE_OPTION
@JSON_OPTION
@CONFIG_OPTION
def status(instance: str | None, workflow: str | None, state: str | None, limit: int, page: int, role: str | None,
           as_json: bool, config_path: str | None) -> None:
    """Show one instance, or the instances (filtered), or the overview per clause and party."""
    filters = " ".join([*(["--workflow", workflow] if workflow else []), *(["--state", state] if state else [])])
    server = _server()
    if server:
        from urllib.parse import quote

        if instance:
            return tables.instance(server.call("GET", f"/instances/{quote(instance, safe='')}", params={"role": role}),
                                   server.zone(), as_json)
        if workflow or state:
            rows, total = _page(server, "/instances", {"workflow": workflow, "state": state, "limit": limit}, page)
            return tables.instance_list(rows, server.zone(), as_json, total,
                                        tables.more_line((page - 1) * limit, len(rows), total, f"status {filters}", page, limit))
        return tables.overview(server.call("GET", "/overview", params={"limit": limit, "page": page}), as_json)
    from engine.service import BadFilter

    with deployment(config_path) as d:
        tz = d.policy.tz
        if instance:
            row = d.instance(instance)
            return tables.instance({**row, "state_title": d.state_title(row["workflow"], row["state"]),
                                    "awaiting_consent": d.awaiting_consent(row)}, tz, as_json)
        if not workflow and not state:
            return tables.overview(d.overview(limit, page), as_json)
        offset = (page - 1) * limit
        try:
            rows = d.instances(workflow, state, limit, offset)
        except BadFilter as exc:
            raise click.UsageError(voice().reason(str(exc))) from None
        total = d.instance_count(workflow, state)
        tables.instance_list([{**r, "state_title": d.state_title(r["workflow"], r["state"])} for r in rows], tz, as_json,
                             total, tables.more_line(offset, len(rows), total, f"status {filters}", page, limit))


@click.command("history")
@click.argument("instance", shell_complete=instance_ids)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines (times in the agreement's zone) instead of a table.")
@CONFIG_OPTION
def history_cmd(instance: str, as_json: bool, config_path: str | None) -> None:
    """Show the recorded history of INSTANCE: every applied and refused event."""
    server = _server()
    if server:
        from urllib.parse import quote

        rows = _pages(server, f"/instances/{quote(instance, safe='')}/history", {"limit": 1000})
        return tables.history(instance, rows, server.zone(), as_json)
    with deployment(config_path) as d:
        tables.history(instance, d.history(instance), d.policy.tz, as_json)


@click.command()
@JSON_OPTION
def tasks(as_json: bool) -> None:
    """What you may (and so owe to) do now on a server, soonest deadline first."""
    server = _server()
    if server is None:
        raise click.UsageError(_("tasks lists what the signed-in person owes: log in first (coopflow login --server URL); "
                                 "on the server, `coopflow status` shows who owes the next step"))
    person = server.person or server.call("GET", "/me")["person"]
    tables.tasks(person, server.call("GET", "/me/tasks"), server.zone(), as_json)


MAX_UPCOMING_DAYS = 3660  # ten years


@click.command()
@click.option("--days", default=30, show_default=True, type=click.IntRange(min=0, max=MAX_UPCOMING_DAYS), metavar="N",
              help="How far ahead to look, in calendar days.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000), metavar="N", help="At most N rows.")
@PAGE_OPTION
@JSON_OPTION
@CONFIG_OPTION
def upcoming(days: int, limit: int, page: int, as_json: bool, config_path: str | None) -> None:
    """Show what falls due in the next N days: schedule occurrences, deadlines, meetings."""
    command, offset = f"upcoming --days {days}", (page - 1) * limit
    server = _server()
    if server:
        items = server.call("GET", "/upcoming", params={"days": days, "limit": limit, "page": page})
        total = int(server.headers.get("x-total-count", offset + len(items)))
        return tables.upcoming(items, days, server.zone(), as_json, total,
                               tables.more_line(offset, len(items), total, command, page, limit))
    with deployment(config_path) as d:
        data = d.upcoming_page(days, limit, offset)
        tables.upcoming(data["items"], days, d.policy.tz, as_json, data["total"],
                        tables.more_line(offset, len(data["items"]), data["total"], command, page, limit))
