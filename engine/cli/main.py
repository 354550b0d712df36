"""The `coopflow` command line: one click command per operator or administrator task."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import click

from engine import logs
from engine.execution import intake
from engine.store import inbox
from engine.store.database import StoreError
from engine.views import render as views
from engine.views.text import line
from engine.rules.actors import parse_actor
from engine.exceptions import CoopflowError, PolicyError
from engine.policy.loader import load_policy
from engine.execution.runtime import Runtime, open_runtime
from engine.policy.schema import SCHEMAS, render

CONFIG_OPTION = click.option(
    "-c", "--config", "config_path", default=None, metavar="CONFIG",
    help="Policy config file (default: $COOPFLOW_CONFIG, then ./config.yaml).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="coopflow")
def cli() -> None:
    """coopflow: run an inter-agency cooperation agreement as durable YAML state machines."""


@cli.command()
@CONFIG_OPTION
def check(config_path: str | None) -> None:
    """Validate the policy; print every problem as file:line:col: message."""
    policy = load_policy(config_path, cache=True)  # unchanged files are not parsed again (engine.policy.cache)
    from engine.views.report import html as report_html

    for problem in report_html.problems(policy):  # the review report's templates render on a sample report
        raise click.ClickException(line(problem))
    click.echo(
        f"ok: {len(policy.workflows)} workflows, {len(policy.schedules)} schedules, "
        f"{len(policy.event_rules)} event rules; policy {policy.digest[:12]}"
    )


@cli.command()
@CONFIG_OPTION
def init(config_path: str | None) -> None:
    """Create the store named by the config (the only command but `run` that may create one)."""
    policy = load_policy(config_path)
    logs.configure(policy.config.logging, policy.root, console=False)
    runtime = open_runtime(policy=policy, create=True)
    click.echo(f"ok: store {runtime.store!r} at schema {runtime.store.meta_value('schema_version')}")


@cli.command()
@CONFIG_OPTION
def run(config_path: str | None) -> None:
    """Run the daemon in the foreground until SIGTERM or SIGINT (systemd-friendly)."""
    from engine.scheduling.daemon import Daemon

    sys.exit(Daemon(config_path).run())


@cli.command()
@CONFIG_OPTION
@click.option("--host", default=None, help="Address to listen on (default: config http.host).")
@click.option("--port", default=None, type=click.IntRange(0, 65535), help="Port (default: config http.port).")
def serve(config_path: str | None, host: str | None, port: int | None) -> None:
    """Serve the HTTP API only (no daemon) against the configured store, e.g. extra processes behind a proxy."""
    import uvicorn

    from engine.server.app import create_app
    from engine.service import Deployment

    deployment = Deployment.open(config_path)
    http = deployment.policy.config.http
    host, port = host or http.host, http.port if port is None else port
    click.echo(f"serving the HTTP API on http://{host}:{port}/api/v1", err=True)
    uvicorn.run(create_app(deployment), host=host, port=port, log_config=None, access_log=False, server_header=False,
                proxy_headers=True, forwarded_allow_ips="127.0.0.1")


@cli.command()
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

    policy = load_policy(config_path)
    logger.remove()  # a simulation must not write into the operators' logs
    first, last = _day_bound(start, policy.tz, end=False), _day_bound(end, policy.tz, end=True)
    if last <= first:
        raise click.BadParameter("--to must be after --from", param_hint="--to")
    if last - first > timedelta(days=366 * MAX_SIMULATED_YEARS):
        raise click.BadParameter(f"simulate at most {MAX_SIMULATED_YEARS} years at once", param_hint="--to")
    events = load_events(events_file, policy) if events_file else []
    entries = Simulator(policy, first, last, events).run()
    if as_json:
        click.echo(timeline_json(entries))
    else:
        views.timeline(policy, entries)


MAX_SIMULATED_YEARS = 100


def _day_bound(text: str, tz, end: bool):
    from datetime import datetime, time

    from engine.views.report import MAX_YEAR, MIN_YEAR

    hint = "--to" if end else "--from"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{line(text)!r} is not a date (YYYY-MM-DD) or ISO 8601 instant", param_hint=hint) from None
    if not MIN_YEAR <= moment.year <= MAX_YEAR:
        raise click.BadParameter(f"{text}: the year must be between {MIN_YEAR} and {MAX_YEAR}", param_hint=hint)
    if len(text) <= 10:
        moment = datetime.combine(moment.date() + timedelta(days=1 if end else 0), time(0), tzinfo=tz)
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


@cli.command()
@click.argument("kind", type=click.Choice(sorted(SCHEMAS)), default="workflow")
def schema(kind: str) -> None:
    """Print the JSON Schema (draft-07) of a policy file kind, for editors."""
    click.echo(render(kind), nl=False)


def _runtime(config_path: str | None) -> Runtime:
    """Open policy and store for a command; the command's events are logged to the file sinks."""
    policy = load_policy(config_path)
    logs.configure(policy.config.logging, policy.root, console=False)
    return open_runtime(policy=policy)


def _values(pairs: tuple[str, ...]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint="--set")
        values[name.strip()] = value
    return values


AS_OPTION = click.option("--as", "actor", required=True, metavar="ACTOR",
                         help="Who acts: party.role or party.role:person (e.g. police.leader).")
SET_OPTION = click.option("--set", "pairs", multiple=True, metavar="NAME=VALUE", help="Set a field (repeatable).")
KEY_OPTION = click.option("--key", default=None, metavar="KEY",
                          help="Idempotency key: the same request again under it applies once and shows the first outcome; "
                               "a different request under it is refused.")
WAIT_OPTION = click.option("--wait", default=30.0, show_default=True, metavar="SECONDS",
                           help="How long to wait for a running daemon to apply the event.")


def _finish(runtime: Runtime, sub: inbox.Submission, wait: float, daemon: str | None) -> None:
    """Wait for the running daemon to apply the event (or settle what it set off), print its outcome, exit 0 or 1."""
    if daemon:
        status, text = runtime.executor.wait(sub.inbox_id, timeout=wait)
    else:
        runtime.settle()  # what the event set off (after-commit actions, rules) and anything left pending
        with runtime.store.reading() as conn:
            status, text = inbox.status(conn, sub.inbox_id)
    if status == inbox.PENDING:
        click.echo(f"pending: queued as inbox #{sub.inbox_id}; the daemon has not applied it within {wait:g} s")
        sys.exit(1)
    click.echo(line(text))
    sys.exit(0 if status == inbox.APPLIED else 1)


@cli.command()
@click.argument("workflow")
@AS_OPTION
@SET_OPTION
@KEY_OPTION
@WAIT_OPTION
@CONFIG_OPTION
def start(workflow: str, actor: str, pairs: tuple[str, ...], key: str | None, wait: float, config_path: str | None) -> None:
    """Start a new instance of WORKFLOW; prints its id, then the outcome."""
    runtime = _runtime(config_path)
    if workflow not in runtime.policy.workflows:
        raise CoopflowError(f"unknown workflow '{workflow}'; workflows: {', '.join(sorted(runtime.policy.workflows))}")
    intake.check_request(actor=actor)
    parse_actor(actor, runtime.policy.config)  # a malformed actor is a usage mistake: nothing is queued
    daemon = runtime.daemon_running()  # when one runs, it applies; otherwise this command does, in the same transaction
    sub = runtime.executor.submit_start(workflow, actor, _values(pairs), key, apply=not daemon)
    click.echo(sub.instance)
    _finish(runtime, sub, wait, daemon)


@cli.command()
@click.argument("instance")
@click.argument("trigger")
@AS_OPTION
@SET_OPTION
@KEY_OPTION
@WAIT_OPTION
@click.option("--withdraw", is_flag=True, help="Withdraw the actor's party's consent to TRIGGER instead.")
@CONFIG_OPTION
def fire(instance: str, trigger: str, actor: str, pairs: tuple[str, ...], key: str | None, wait: float,
         withdraw: bool, config_path: str | None) -> None:
    """Fire TRIGGER on INSTANCE (or give consent, when the transition needs approvals)."""
    runtime = _runtime(config_path)
    intake.check_request(instance=instance, trigger=trigger, actor=actor)
    parse_actor(actor, runtime.policy.config)
    daemon = runtime.daemon_running()
    sub = runtime.executor.submit_fire(instance, trigger, actor, _values(pairs), key, withdraw=withdraw, apply=not daemon)
    _finish(runtime, sub, wait, daemon)


@cli.command()
@click.argument("instance", required=False)
@click.option("--workflow", "-w", default=None, help="Only instances of this workflow.")
@click.option("--state", "-s", default=None, help="Only instances in this state.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000), metavar="N",
              help="At most N rows per list (the counts always cover everything).")
@click.option("--page", default=1, show_default=True, type=click.IntRange(min=1), metavar="P", help="Show page P of the lists.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@CONFIG_OPTION
def status(instance: str | None, workflow: str | None, state: str | None, limit: int, page: int, as_json: bool,
           config_path: str | None) -> None:
    """Show one instance, or the instances (filtered), or the overview per clause and party."""
    runtime = _runtime(config_path)
    views.status(runtime, instance, workflow, state, as_json, limit, page)


@cli.command("history")
@click.argument("instance")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@CONFIG_OPTION
def history_cmd(instance: str, as_json: bool, config_path: str | None) -> None:
    """Show the recorded history of INSTANCE: every applied and refused event."""
    runtime = _runtime(config_path)
    views.history(runtime, instance, as_json)


@cli.group("inbox", invoke_without_command=True)
@click.option("--status", "statuses", multiple=True, type=click.Choice([*inbox.STATUSES, "all"]),
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

    chosen = inbox.STATUSES if "all" in statuses else (statuses or (inbox.PENDING, inbox.REFUSED))
    runtime = _runtime(config_path)
    with runtime.store.reading() as conn:
        rows = inbox.rows(conn, tuple(chosen), instance=instance, workflow=workflow, limit=limit)
    if as_json:
        for r in rows:
            click.echo(json.dumps({"id": r["id"], "key": r["key"], "kind": r["kind"], "instance": r["instance"],
                                   "workflow": r["workflow"], "trigger": r["trigger"], "actor": r["actor"],
                                   "values": r["payload"].get("set", {}), "status": r["status"], "outcome": r["outcome"],
                                   "submitted_at": r["submitted_at"].isoformat(),
                                   "applied_at": r["applied_at"].isoformat() if r["applied_at"] else None},
                                  ensure_ascii=False))
        return
    if not rows:
        click.echo(f"no {' or '.join(chosen)} events")
        return
    from rich.table import Table

    table = Table(title="inbox")
    for column in ("#", "submitted", "event", "instance", "actor", "status", "outcome"):
        table.add_column(column)
    for r in rows:
        event = f"start {r['workflow']}" if r["kind"] == inbox.START else f"{r['kind']} {r['trigger']}"
        table.add_row(str(r["id"]), views.local(runtime, r["submitted_at"]), event, r["instance"], r["actor"],
                      r["status"], r["outcome"] or "")
    views._console().print(table)


@inbox_cmd.command("cancel")
@click.argument("inbox_id", type=int, metavar="ID")
@click.option("--as", "actor", required=True, metavar="ACTOR", help="Who cancels: only an administrator (system).")
@CONFIG_OPTION
def inbox_cancel(inbox_id: int, actor: str, config_path: str | None) -> None:
    """Cancel pending event ID: it is never applied; history records who cancelled it."""
    runtime = _runtime(config_path)
    if not parse_actor(actor, runtime.policy.config).is_system:
        raise CoopflowError("only an administrator may cancel queued events: use --as system")
    import getpass

    by = f"system ({getpass.getuser()})"
    with runtime.store.transaction() as conn:
        row = inbox.cancel(conn, inbox_id, by)
    click.echo(f"cancelled: inbox #{inbox_id} ({inbox.describe({**row, 'outcome': None, 'status': 'was pending'})})")


@cli.group()
def audit() -> None:
    """Check the tamper-evident history."""


@audit.command()
@CONFIG_OPTION
@click.option("--anchors", "extra_anchors", multiple=True, type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="Also check these anchor files or JSON logs (e.g. copies shipped to another host); repeatable.")
def verify(config_path: str | None, extra_anchors: tuple[str, ...]) -> None:
    """Verify the history (chain, anchors) and that the state follows from it; exit 1 naming the first mismatch."""
    from engine.store import audit as auditing

    runtime = _runtime(config_path)
    report = auditing.verify(runtime.store, extra_anchors)
    if not report.ok:
        more = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
        click.echo(f"TAMPERED: {report.problems[0]}{more}", err=True)
        sys.exit(1)
    legacy = f"; {report.legacy} instances from before the audit record checked by state only" if report.legacy else ""
    click.echo(f"ok: {report.rows} history rows, chain intact; {report.anchors} anchors match; state follows from the "
               f"history ({report.instances} instances, {report.consents} consents, {report.timers} armed timers, "
               f"{report.occurrences} schedule occurrences){legacy}")


# --------------------------------------------------------------------------- accounts and tokens (engine/auth)


def _secret_from(stdin: bool, label: str, confirm: bool) -> str:
    """A password or token: the first line of stdin with --*-stdin, else typed at a hidden prompt."""
    if stdin:
        text = sys.stdin.readline().rstrip("\r\n")
        if not text:
            raise CoopflowError(f"no {label} on standard input")
        return text
    return click.prompt(label.capitalize(), hide_input=True,
                        confirmation_prompt=f"Repeat the {label}" if confirm else False)


@contextmanager
def _auth_runtime(config_path: str | None) -> Iterator[Runtime]:
    """`_runtime` for the account and token commands, its connections closed when the command ends."""
    runtime = _runtime(config_path)
    try:
        yield runtime
    finally:
        runtime.store.dispose()


def _local_client() -> str:
    import getpass

    return f"local:{getpass.getuser()}"


PASSWORD_STDIN = click.option("--password-stdin", is_flag=True,
                              help="Read the password from the first line of standard input instead of prompting.")
CLIENT_OPTION = click.option("--client", default=None, metavar="ADDRESS",
                             help="Client address recorded for throttling (default: local:<os user>).")


def _principal_out(runtime: Runtime, principal, as_json: bool) -> None:
    if as_json:
        return views._json(principal.as_dict())
    click.echo(f"ok: {principal.person} ({principal.method}, from {principal.client})")
    click.echo(f"roles: {', '.join(principal.roles)}" + ("; administrator" if principal.is_admin else "")
               + ("; read-only" if principal.read_only else ""))
    if principal.acting_role and not principal.read_only:
        click.echo(f"actor: {principal.act_as()}")


@cli.group()
def user() -> None:
    """Accounts of the people config.yaml lists (passwords hashed with argon2id)."""


@user.command("add")
@click.argument("person")
@PASSWORD_STDIN
@CONFIG_OPTION
def user_add(person: str, password_stdin: bool, config_path: str | None) -> None:
    """Create the account of PERSON (a person listed under a role in config.yaml)."""
    from engine.auth import accounts, people

    with _auth_runtime(config_path) as runtime:
        people.require_person(runtime.policy.config, person)  # before asking for a password
        accounts.add_user(runtime.store, runtime.policy.config, person, _secret_from(password_stdin, "password", True))
        click.echo(f"account created: {person} ({', '.join(people.grants(runtime.policy.config, person))})")


@user.command("passwd")
@click.argument("person")
@PASSWORD_STDIN
@CONFIG_OPTION
def user_passwd(person: str, password_stdin: bool, config_path: str | None) -> None:
    """Set a new password for PERSON."""
    from engine.auth import accounts

    with _auth_runtime(config_path) as runtime:
        accounts.set_password(runtime.store, person, _secret_from(password_stdin, "new password", True))
        click.echo(f"password changed: {person}")


@user.command("disable")
@click.argument("person")
@CONFIG_OPTION
def user_disable(person: str, config_path: str | None) -> None:
    """Disable PERSON's account: their password and tokens are refused until enabled."""
    _set_disabled(person, True, config_path)


@user.command("enable")
@click.argument("person")
@CONFIG_OPTION
def user_enable(person: str, config_path: str | None) -> None:
    """Enable PERSON's account again."""
    _set_disabled(person, False, config_path)


def _set_disabled(person: str, disabled: bool, config_path: str | None) -> None:
    from engine.auth import accounts

    with _auth_runtime(config_path) as runtime:
        changed = accounts.set_disabled(runtime.store, person, disabled)
    word = "disabled" if disabled else "enabled"
    click.echo(f"{word}: {person}" if changed else f"already {word}: {person}")


@user.command("unlock")
@click.argument("person")
@CONFIG_OPTION
def user_unlock(person: str, config_path: str | None) -> None:
    """Lift the lockout of PERSON after too many failed sign-ins."""
    from engine.auth import accounts

    with _auth_runtime(config_path) as runtime:
        accounts.unlock(runtime.store, person, _local_client())
    click.echo(f"unlocked: {person}")


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@CONFIG_OPTION
def user_list(as_json: bool, config_path: str | None) -> None:
    """Every person of config.yaml and every account: roles, administrator, status."""
    from rich.table import Table

    from engine.auth import accounts

    with _auth_runtime(config_path) as runtime:
        rows = accounts.list_users(runtime.store, runtime.policy.config)
        if as_json:
            return views._json(rows)
        table = Table(title=f"{sum(r['created'] is not None for r in rows)} account(s), {len(rows)} people")
        for column in ("person", "roles", "admin", "status", "created", "password changed"):
            table.add_column(column)
        for r in rows:
            status = r["status"] + (f" until {views.local(runtime, r['locked_until'])}" if r["locked_until"] else "")
            table.add_row(r["person"], ", ".join(r["roles"]), "yes" if r["admin"] else "", status,
                          views.local(runtime, r["created"]) or "", views.local(runtime, r["password_changed"]) or "")
        views._console().print(table)


@user.command("login")
@click.argument("person")
@PASSWORD_STDIN
@CLIENT_OPTION
@click.option("--role", default=None, metavar="ROLE", help="Acting role to check (party.role, or a role held in one party).")
@click.option("--json", "as_json", is_flag=True, help="Print the principal as JSON.")
@CONFIG_OPTION
def user_login(person: str, password_stdin: bool, client: str | None, role: str | None, as_json: bool,
               config_path: str | None) -> None:
    """Check PERSON's password as the HTTP API will (recorded, throttled); print who they are."""
    from engine.auth import authenticate_password

    with _auth_runtime(config_path) as runtime:
        principal = authenticate_password(runtime.store, person, _secret_from(password_stdin, "password", False),
                                          client or _local_client(), config=runtime.policy.config)
        _principal_out(runtime, principal.with_role(role) if role else principal, as_json)


@cli.group()
def token() -> None:
    """Personal API tokens (shown once; the store keeps only their hash)."""


@token.command("issue")
@click.argument("person")
@click.option("--expires", default="90d", show_default=True, metavar="LIFETIME", help="Lifetime: 12h, 90d, 4w or never.")
@click.option("--read-only", is_flag=True, help="The token may read but not act.")
@click.option("--name", default=None, metavar="TEXT", help="What the token is for (shown in listings).")
@CONFIG_OPTION
def token_issue(person: str, expires: str, read_only: bool, name: str | None, config_path: str | None) -> None:
    """Issue a token for PERSON; the token is printed once on standard output."""
    from engine.auth import tokens

    try:
        lifetime = tokens.parse_expires(expires)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--expires") from None
    with _auth_runtime(config_path) as runtime:
        token_id, secret = tokens.issue(runtime.store, runtime.policy.config, person, lifetime, read_only, name)
        click.echo(secret)
        click.echo(f"token {token_id} issued for {person}" + (" (read-only)" if read_only else "")
                   + f"; expires {expires if lifetime is None else 'in ' + expires}. It is shown only this once.", err=True)


@token.command("list")
@click.argument("person", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@CONFIG_OPTION
def token_list(person: str | None, as_json: bool, config_path: str | None) -> None:
    """List tokens (of PERSON): id, name, created, expires, last used, read-only, revoked."""
    from rich.table import Table

    from engine.auth import tokens

    with _auth_runtime(config_path) as runtime:
        rows = tokens.list_tokens(runtime.store, person)
        if as_json:
            return views._json(rows)
        table = Table(title=f"{len(rows)} token(s)")
        for column in ("id", "person", "name", "created", "expires", "last used", "read-only", "state"):
            table.add_column(column)
        for r in rows:
            table.add_row(r["id"], r["person"], r["name"] or "", views.local(runtime, r["created"]),
                          views.local(runtime, r["expires"]) or "never", views.local(runtime, r["last_used"]) or "",
                          "yes" if r["read_only"] else "", r["state"])
        views._console().print(table)


@token.command("revoke")
@click.argument("token_id", metavar="ID")
@CONFIG_OPTION
def token_revoke(token_id: str, config_path: str | None) -> None:
    """Revoke token ID (as `token list` shows it); it is refused from now on."""
    from engine.auth import tokens

    with _auth_runtime(config_path) as runtime:
        changed = tokens.revoke(runtime.store, token_id)
    token_id = tokens.token_id(token_id)
    click.echo(f"revoked: {token_id}" if changed else f"already revoked: {token_id}")


@token.command("check")
@CLIENT_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the principal as JSON.")
@CONFIG_OPTION
def token_check(client: str | None, as_json: bool, config_path: str | None) -> None:
    """Check the token on standard input as the HTTP API will; print who it authenticates."""
    from engine.auth import authenticate_token

    with _auth_runtime(config_path) as runtime:
        principal = authenticate_token(runtime.store, _secret_from(True, "token", False), client or _local_client(),
                                       config=runtime.policy.config)
        _principal_out(runtime, principal, as_json)


@cli.command()
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
        raise click.UsageError("give a WORKFLOW or --all (not both)")
    if all_ and not out:
        raise click.UsageError("--all needs --out DIR")
    policy = load_policy(config_path)
    render = FORMATS[fmt]
    if all_:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        for wid, spec in sorted(policy.workflows.items()):
            (folder / f"{wid}.{'mmd' if fmt == 'mermaid' else 'dot'}").write_text(render(spec), encoding="utf-8")
        click.echo(f"wrote {len(policy.workflows)} diagram(s) to {folder}")
        return
    spec = policy.workflows.get(workflow)
    if spec is None:
        raise CoopflowError(f"unknown workflow '{workflow}'; workflows: {', '.join(sorted(policy.workflows))}")
    text = render(spec)
    if out:
        Path(out).write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}")
    else:
        click.echo(text, nl=False)


MAX_UPCOMING_DAYS = 3660  # ten years


@cli.command()
@click.option("--days", default=30, show_default=True, type=click.IntRange(min=0, max=MAX_UPCOMING_DAYS), metavar="N",
              help="How far ahead to look, in calendar days.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000), metavar="N", help="At most N rows.")
@click.option("--page", default=1, show_default=True, type=click.IntRange(min=1), metavar="P", help="Show page P.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@CONFIG_OPTION
def upcoming(days: int, limit: int, page: int, as_json: bool, config_path: str | None) -> None:
    """Show what falls due in the next N days: schedule occurrences, deadlines, meetings."""
    views.show_upcoming(_runtime(config_path), days, as_json, limit, page)


@cli.command()
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
    from engine.views import report as reports

    if (period is not None and (first or last)) or (first is None) != (last is None):
        raise click.UsageError("give either --period or both --from and --to (neither: the review cadence's current period)")
    if fmt in ("pdf", "docx") and not out:
        raise click.UsageError(f"--format {fmt} writes a file: give --out FILE")
    policy = load_policy(config_path)
    if period is None and first is None:
        period = reports.cadence_label(policy, clock.now())
    try:
        chosen = reports.of_policy(policy, period=period, first=first, last=last, now=clock.now())
    except reports.PeriodRefused:
        raise
    except reports.PeriodError as exc:
        raise click.BadParameter(str(exc), param_hint="--period" if period else "--from/--to") from None
    logs.configure(policy.config.logging, policy.root, console=False)
    runtime = open_runtime(policy=policy)
    text = reports.FORMATS[fmt](reports.build(runtime.store, runtime.policy, chosen))
    if out:
        Path(out).write_bytes(text) if isinstance(text, bytes) else Path(out).write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}")
    else:
        click.echo(text, nl=False)


from engine.notify.cli import deliveries as _deliveries  # noqa: E402  (imports CONFIG_OPTION, _runtime from here)

cli.add_command(_deliveries)


def main() -> None:
    """Entry point: user mistakes print a clear message and exit non-zero, never a traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except PolicyError as exc:
        for problem in exc.problems:
            click.echo(line(problem), err=True)
        click.echo(f"{len(exc.problems)} problem(s) found", err=True)
        sys.exit(1)
    except StoreError as exc:  # unreachable, full, read-only or foreign store: the operator's to fix
        click.echo(f"store unavailable: {line(exc)}", err=True)
        sys.exit(1)
    except CoopflowError as exc:
        click.echo(f"error: {line(exc)}", err=True)
        sys.exit(1)
    except MemoryError:
        click.echo("error: out of memory", err=True)
        sys.exit(1)
    except Exception as exc:  # a bug, not the user's mistake: say so, keep the details in the log
        from loguru import logger

        logger.opt(exception=exc).error("internal error")  # every sink has diagnose=False: no local variables
        click.echo(f"internal error: {type(exc).__name__}: {line(exc)} (details in the log; please report it)", err=True)
        sys.exit(3)
