"""Accounts and API tokens of the people config.yaml lists (engine/auth), on the machine that holds the store.

`user add|passwd|disable|enable|unlock|list|login` and `token issue|list|revoke|check`: the
administrator's commands; people use their tokens from their own desk (`coopflow login`).
"""

from __future__ import annotations

import click

from engine.cli.main import CONFIG_OPTION, deployment
from engine.cli.session import read_secret as _secret_from
from engine.cli.tables import console, echo_json, grid, local


def _local_client() -> str:
    import getpass

    return f"local:{getpass.getuser()}"


PASSWORD_STDIN = click.option("--password-stdin", is_flag=True,
                              help="Read the password from the first line of standard input instead of prompting.")
CLIENT_OPTION = click.option("--client", default=None, metavar="ADDRESS",
                             help="Client address recorded for throttling (default: local:<os user>).")


def _principal_out(principal, as_json: bool) -> None:
    if as_json:
        return echo_json(principal.as_dict())
    click.echo(f"ok: {principal.person} ({principal.method}, from {principal.client})")
    click.echo(f"roles: {', '.join(principal.roles)}" + ("; administrator" if principal.is_admin else "")
               + ("; read-only" if principal.read_only else ""))
    if principal.acting_role and not principal.read_only:
        click.echo(f"actor: {principal.act_as()}")


@click.group()
def user() -> None:
    """Accounts of the people config.yaml lists (passwords hashed with argon2id)."""


@user.command("add")
@click.argument("person")
@PASSWORD_STDIN
@CONFIG_OPTION
def user_add(person: str, password_stdin: bool, config_path: str | None) -> None:
    """Create the account of PERSON (a person listed under a role in config.yaml)."""
    from engine.auth import accounts, people

    with deployment(config_path) as d:
        people.require_person(d.policy.config, person)  # before asking for a password
        accounts.add_user(d.runtime.store, d.policy.config, person, _secret_from(password_stdin, "password", True))
        click.echo(f"account created: {person} ({', '.join(people.grants(d.policy.config, person))})")


@user.command("passwd")
@click.argument("person")
@PASSWORD_STDIN
@CONFIG_OPTION
def user_passwd(person: str, password_stdin: bool, config_path: str | None) -> None:
    """Set a new password for PERSON."""
    from engine.auth import accounts

    with deployment(config_path) as d:
        accounts.set_password(d.runtime.store, person, _secret_from(password_stdin, "new password", True))
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

    with deployment(config_path) as d:
        changed = accounts.set_disabled(d.runtime.store, person, disabled)
    word = "disabled" if disabled else "enabled"
    click.echo(f"{word}: {person}" if changed else f"already {word}: {person}")


@user.command("unlock")
@click.argument("person")
@CONFIG_OPTION
def user_unlock(person: str, config_path: str | None) -> None:
    """Lift the lockout of PERSON after too many failed sign-ins."""
    from engine.auth import accounts

    with deployment(config_path) as d:
        accounts.unlock(d.runtime.store, person, _local_client())
    click.echo(f"unlocked: {person}")


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@CONFIG_OPTION
def user_list(as_json: bool, config_path: str | None) -> None:
    """Every person of config.yaml and every account: roles, administrator, status."""
    from engine.auth import accounts

    with deployment(config_path) as d:
        rows = accounts.list_users(d.runtime.store, d.policy.config)
        if as_json:
            return echo_json(rows)
        tz = d.policy.tz
        cells = [(r["person"], ", ".join(r["roles"]), "yes" if r["admin"] else "",
                  r["status"] + (f" until {local(r['locked_until'], tz)}" if r["locked_until"] else ""),
                  local(r["created"], tz), local(r["password_changed"], tz)) for r in rows]
    console().print(grid(f"{sum(r['created'] is not None for r in rows)} account(s), {len(rows)} people",
                         ("person", "roles", "admin", "status", "created", "password changed"), cells))


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

    with deployment(config_path) as d:
        principal = authenticate_password(d.runtime.store, person, _secret_from(password_stdin, "password", False),
                                          client or _local_client(), config=d.policy.config)
        _principal_out(principal.with_role(role) if role else principal, as_json)


@click.group()
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
    with deployment(config_path) as d:
        token_id, secret = tokens.issue(d.runtime.store, d.policy.config, person, lifetime, read_only, name)
        click.echo(secret)
        click.echo(f"token {token_id} issued for {person}" + (" (read-only)" if read_only else "")
                   + f"; expires {expires if lifetime is None else 'in ' + expires}. It is shown only this once.", err=True)


@token.command("list")
@click.argument("person", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@CONFIG_OPTION
def token_list(person: str | None, as_json: bool, config_path: str | None) -> None:
    """List tokens (of PERSON): id, name, created, expires, last used, read-only, revoked."""
    from engine.auth import tokens

    with deployment(config_path) as d:
        rows = tokens.list_tokens(d.runtime.store, person)
        if as_json:
            return echo_json(rows)
        tz = d.policy.tz
        cells = [(r["id"], r["person"], r["name"] or "", local(r["created"], tz), local(r["expires"], tz) or "never",
                  local(r["last_used"], tz), "yes" if r["read_only"] else "", r["state"]) for r in rows]
    console().print(grid(f"{len(rows)} token(s)", ("id", "person", "name", "created", "expires", "last used", "read-only",
                                                   "state"), cells))


@token.command("revoke")
@click.argument("token_id", metavar="ID")
@CONFIG_OPTION
def token_revoke(token_id: str, config_path: str | None) -> None:
    """Revoke token ID (as `token list` shows it); it is refused from now on."""
    from engine.auth import tokens

    with deployment(config_path) as d:
        changed = tokens.revoke(d.runtime.store, token_id)
    token_id = tokens.token_id(token_id)
    click.echo(f"revoked: {token_id}" if changed else f"already revoked: {token_id}")


@token.command("check")
@CLIENT_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the principal as JSON.")
@CONFIG_OPTION
def token_check(client: str | None, as_json: bool, config_path: str | None) -> None:
    """Check the token on standard input as the HTTP API will; print who it authenticates."""
    from engine.auth import authenticate_token

    with deployment(config_path) as d:
        principal = authenticate_token(d.runtime.store, _secret_from(True, "token", False), client or _local_client(),
                                       config=d.policy.config)
        _principal_out(principal, as_json)
