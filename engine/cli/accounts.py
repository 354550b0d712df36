"""Accounts and API tokens of the people config.yaml lists (engine/auth), on the machine that holds the store.

`user add|passwd|disable|enable|unlock|list|login` and `token issue|list|revoke|check`: the
administrator's commands; people use their tokens from their own desk (`coopflow login`).
Each is parse → call → render: the call is the service layer's (engine/service_accounts.py),
which refuses what is not allowed whoever calls it.
"""

from __future__ import annotations

import click

from engine.cli.language import _N_, _
from engine.cli.main import CONFIG_OPTION, deployment
from engine.cli.session import read_secret as _secret_from
from engine.cli.tables import console, echo_json, grid, local


def _local_client() -> str:
    import getpass

    return f"local:{getpass.getuser()}"


# The account statuses and token states engine/auth reports, marked for the catalog: shown through _().
STATUS_WORDS = (_N_("enabled"), _N_("disabled"), _N_("locked"), _N_("no account"), _N_("not in config"),
                _N_("active"), _N_("expired"), _N_("revoked"))

PASSWORD_STDIN = click.option("--password-stdin", is_flag=True,
                              help="Read the password from the first line of standard input instead of prompting.")
CLIENT_OPTION = click.option("--client", default=None, metavar="ADDRESS",
                             help="Client address recorded for throttling (default: local:<os user>).")


def _principal_out(principal, as_json: bool) -> None:
    if as_json:
        return echo_json(principal.as_dict())
    click.echo(_("ok: %(person)s (%(method)s, from %(client)s)", person=principal.person, method=principal.method,
                 client=principal.client))
    click.echo(_("roles: %(roles)s", roles=", ".join(principal.roles)) + (_("; administrator") if principal.is_admin else "")
               + (_("; read-only") if principal.read_only else ""))
    if principal.acting_role and not principal.read_only:
        click.echo(_("actor: %(actor)s", actor=principal.act_as()))


@click.group()
def user() -> None:
    """Accounts of the people config.yaml lists (passwords hashed with argon2id)."""


@user.command("add")
@click.argument("person")
@PASSWORD_STDIN
@CONFIG_OPTION
def user_add(person: str, password_stdin: bool, config_path: str | None) -> None:
    """Create the account of PERSON (a person listed under a role in config.yaml)."""
    with deployment(config_path) as d:
        d.person_roles(person)  # refused before the password is asked for
        roles = d.add_user(person, _secret_from(password_stdin, "password", True))
    click.echo(_("account created: %(person)s (%(roles)s)", person=person, roles=", ".join(roles)))


@user.command("passwd")
@click.argument("person")
@PASSWORD_STDIN
@CONFIG_OPTION
def user_passwd(person: str, password_stdin: bool, config_path: str | None) -> None:
    """Set a new password for PERSON."""
    with deployment(config_path) as d:
        d.set_password(person, _secret_from(password_stdin, "new password", True))
    click.echo(_("password changed: %(person)s", person=person))


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
    with deployment(config_path) as d:
        changed = d.set_disabled(person, disabled)
    if disabled:
        click.echo(_("disabled: %(person)s", person=person) if changed else _("already disabled: %(person)s", person=person))
    else:
        click.echo(_("enabled: %(person)s", person=person) if changed else _("already enabled: %(person)s", person=person))


@user.command("unlock")
@click.argument("person")
@CONFIG_OPTION
def user_unlock(person: str, config_path: str | None) -> None:
    """Lift the lockout of PERSON after too many failed sign-ins."""
    with deployment(config_path) as d:
        d.unlock_user(person, _local_client())
    click.echo(_("unlocked: %(person)s", person=person))


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@CONFIG_OPTION
def user_list(as_json: bool, config_path: str | None) -> None:
    """Every person of config.yaml and every account: roles, administrator, status."""
    with deployment(config_path) as d:
        rows, tz = d.users(), d.policy.tz
    if as_json:
        return echo_json(rows)
    cells = [(r["person"], ", ".join(r["roles"]), _("yes") if r["admin"] else "",
              _(r["status"]) + (_(" until %(time)s", time=local(r["locked_until"], tz)) if r["locked_until"] else ""),
              local(r["created"], tz), local(r["password_changed"], tz)) for r in rows]
    console().print(grid(_("%(accounts)s account(s), %(people)s people", accounts=sum(r["created"] is not None for r in rows),
                           people=len(rows)),
                         (_("person"), _("roles"), _("administrator"), _("status"), _("created"), _("password changed")), cells))


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
    with deployment(config_path) as d:
        principal = d.check_password(person, _secret_from(password_stdin, "password", False), client or _local_client())
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
    from engine.service import BadLifetime

    with deployment(config_path) as d:
        try:
            token_id, secret = d.issue_token(person, expires, read_only, name)
        except BadLifetime as exc:
            raise click.BadParameter(str(exc), param_hint="--expires") from None
    click.echo(secret)
    never = expires.strip().lower() == "never"
    click.echo(_("token %(id)s issued for %(person)s", id=token_id, person=person) + (_(" (read-only)") if read_only else "")
               + (_("; expires never.") if never else _("; expires in %(lifetime)s.", lifetime=expires))
               + " " + _("It is shown only this once."), err=True)


@token.command("list")
@click.argument("person", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@CONFIG_OPTION
def token_list(person: str | None, as_json: bool, config_path: str | None) -> None:
    """List tokens (of PERSON): id, name, created, expires, last used, read-only, revoked."""
    with deployment(config_path) as d:
        rows, tz = d.tokens(person), d.policy.tz
    if as_json:
        return echo_json(rows)
    cells = [(r["id"], r["person"], r["name"] or "", local(r["created"], tz), local(r["expires"], tz) or _("never"),
              local(r["last_used"], tz), _("yes") if r["read_only"] else "", _(r["state"])) for r in rows]
    console().print(grid(_("%(n)s token(s)", n=len(rows)), (_("id"), _("person"), _("name"), _("created"), _("expires"),
                                                            _("last used"), _("read-only"), _("state")), cells))


@token.command("revoke")
@click.argument("token_id", metavar="ID")
@CONFIG_OPTION
def token_revoke(token_id: str, config_path: str | None) -> None:
    """Revoke token ID (as `token list` shows it); it is refused from now on."""
    with deployment(config_path) as d:
        token_id, changed = d.revoke_token(token_id)
    click.echo(_("revoked: %(id)s", id=token_id) if changed else _("already revoked: %(id)s", id=token_id))


@token.command("check")
@CLIENT_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the principal as JSON.")
@CONFIG_OPTION
def token_check(client: str | None, as_json: bool, config_path: str | None) -> None:
    """Check the token on standard input as the HTTP API will; print who it authenticates."""
    with deployment(config_path) as d:
        principal = d.check_token(_secret_from(True, "token", False), client or _local_client())
    _principal_out(principal, as_json)
