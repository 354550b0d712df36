"""`coopflow login` and `coopflow logout`: a personal API token kept for the commands that follow.

`login --server URL` asks for the user name and password (or takes a token: `--token-stdin`,
or $COOPFLOW_TOKEN), exchanges them for a personal token (POST /api/v1/login), checks who it
authenticates (GET /api/v1/me) and saves server, token, person and the agreement's time zone in
engine.cli.client.credentials_path() (mode 0600). `logout` revokes that token on the server
and removes the file.
"""

from __future__ import annotations

import os
import socket
import sys

import click

from engine.cli import client
from engine.cli.client import ClientError, Remote
from engine.cli.language import _
from engine.exceptions import CoopflowError


def read_secret(from_stdin: bool, label: str, confirm: bool = False) -> str:
    """A password or token: the first line of stdin with --*-stdin, else typed at a hidden prompt."""
    if from_stdin:
        text = sys.stdin.readline().rstrip("\r\n")
        if not text:
            raise CoopflowError(f"no {label} on standard input")
        return text
    prompt, again = {"password": (_("Password"), _("Repeat the password")),
                     "new password": (_("New password"), _("Repeat the new password")),
                     "token": (_("Token"), _("Repeat the token"))}[label]
    return click.prompt(prompt, hide_input=True, confirmation_prompt=again if confirm else False)


@click.command()
@click.option("--server", "server_url", default=None, metavar="URL",
              help="The coopflow server, e.g. https://coopflow.laocai.gov.vn (default: $COOPFLOW_SERVER).")
@click.option("--user", "person", default=None, metavar="PERSON", help="Your user name (asked when not given).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@click.option("--token-stdin", is_flag=True, help="Use an API token (from `coopflow token issue`) read from standard input.")
@click.option("--expires", default="90d", show_default=True, metavar="LIFETIME",
              help="Lifetime of the token a password login creates: 12h, 90d, 4w or never.")
@click.option("--read-only", is_flag=True, help="Ask for a read-only token (reads only).")
@click.pass_context
def login(ctx: click.Context, server_url: str | None, person: str | None, password_stdin: bool, token_stdin: bool,
          expires: str, read_only: bool) -> None:
    """Log in to a coopflow server; later commands go there, acting as you."""
    from engine.cli.main import Settings

    url = server_url or Settings.of(ctx).server or os.environ.get(client.ENV_SERVER)
    if not url:
        raise click.UsageError(_("give the server: coopflow login --server URL (or set COOPFLOW_SERVER)"))
    if password_stdin and token_stdin:
        raise click.UsageError(_("--password-stdin and --token-stdin exclude each other"))
    server = Remote(client.normalise_server(url), None)
    token = read_secret(True, "token") if token_stdin else (os.environ.get(client.ENV_TOKEN) if not person else None)
    token_id = None
    if token is None:
        person = person or click.prompt(_("User name")).strip()
        password = read_secret(password_stdin, "password")
        issued = server.call("POST", "/login", auth=False, body={
            "person": person, "password": password, "expires": expires, "read_only": read_only,
            "name": f"coopflow login from {socket.gethostname()}"[:200]})
        token, token_id = issued["token"], issued["token_id"]
    server.token = token
    me = server.call("GET", "/me")
    path = client.save_credentials({"server": server.server, "token": token, "token_id": token_id or _token_id(me),
                                    "person": me["person"], "timezone": me.get("timezone")})
    roles = ", ".join(me["roles"]) + (_("; administrator") if me["admin"] else "") + (_("; read-only") if me["read_only"] else "")
    click.echo(_("logged in to %(server)s as %(person)s (%(roles)s)", server=server.server, person=me["person"], roles=roles))
    click.echo(_("token saved in %(path)s (readable only by you); coopflow logout revokes it", path=path), err=True)


def _token_id(me: dict) -> str | None:
    method = str(me.get("method", ""))
    return method.removeprefix("token:") if method.startswith("token:") else None


@click.command()
def logout() -> None:
    """Revoke the saved token on its server and forget it."""
    saved = client.load_credentials()
    if saved is None:
        click.echo(_("not logged in"))
        return
    server = Remote(client.normalise_server(saved["server"]), saved.get("token"))
    try:
        server.call("DELETE", "/me/token")
        revoked = _("token revoked")
    except ClientError as exc:  # already revoked or expired, or the server is down: forget it all the same
        revoked = _("token not revoked: %(why)s", why=exc)
    client.forget_credentials()
    click.echo(_("logged out of %(server)s (%(revoked)s)", server=server.server, revoked=revoked))
