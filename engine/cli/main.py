"""The `coopflow` command line: the group, its global options, and the entry point.

Sub-commands live in modules named for what they hold and are imported only when invoked, so a
command talking to a server (engine/cli/client.py) loads neither SQLAlchemy nor the policy
models: `instances` (start, fire, consent, withdraw, status, history, tasks, upcoming),
`session` (login, logout), `admin` (check, init, run, serve, simulate, schema, inbox, audit,
diagram, report), `accounts` (user, token), engine/notify/cli.py (deliveries).

Where a command runs: `--server URL` (or $COOPFLOW_SERVER) sends it to that server's HTTP API;
`-c CONFIG`, $COOPFLOW_CONFIG, `--as` or `--local` run it on this machine's store (the
administrator's local mode); otherwise a saved `coopflow login` decides, else ./config.yaml.

What it says is in the locale's language, else config.yaml's `cli.language` (engine/cli/language.py).
"""

from __future__ import annotations

import importlib
import sys
from contextlib import contextmanager

import click

from engine.cli import clicktext, language
from engine.cli.language import _
from engine.exceptions import CoopflowError, PolicyError, StoreError

COMMANDS = {
    "start": "engine.cli.instances:start", "fire": "engine.cli.instances:fire",
    "consent": "engine.cli.instances:consent", "withdraw": "engine.cli.instances:withdraw",
    "status": "engine.cli.instances:status", "history": "engine.cli.instances:history_cmd",
    "tasks": "engine.cli.instances:tasks", "upcoming": "engine.cli.instances:upcoming",
    "login": "engine.cli.session:login", "logout": "engine.cli.session:logout",
    "check": "engine.cli.admin:check", "init": "engine.cli.admin:init", "run": "engine.cli.admin:run",
    "serve": "engine.cli.admin:serve", "simulate": "engine.cli.admin:simulate", "schema": "engine.cli.admin:schema",
    "inbox": "engine.cli.admin:inbox_cmd", "audit": "engine.cli.admin:audit", "diagram": "engine.cli.admin:diagram",
    "report": "engine.cli.admin:report",
    "user": "engine.cli.accounts:user", "token": "engine.cli.accounts:token",
    "deliveries": "engine.notify.cli:deliveries",
}


class Settings:
    """The group's options, seen by every sub-command (`Settings.of(ctx)`)."""

    def __init__(self, config: str | None = None, server: str | None = None, local: bool = False):
        self.config, self.server, self.local = config, server, local

    @staticmethod
    def of(ctx: click.Context | None = None) -> Settings:
        ctx = ctx or click.get_current_context()
        return ctx.find_object(Settings) or Settings()


class LazyGroup(click.Group):
    """A group whose sub-commands are imported when named (COMMANDS), not at start-up; each command
    line starts by settling the language, and every command is helped in it (engine/cli/clicktext.py)."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra) -> click.Context:
        language.settle_from_locale()
        clicktext.install()
        clicktext.localise(self)
        return super().make_context(info_name, args, parent, **extra)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands or name not in COMMANDS:
            return super().get_command(ctx, name)
        module, _, attr = COMMANDS[name].partition(":")
        return clicktext.localise(getattr(importlib.import_module(module), attr))


def _config_from_group(ctx: click.Context, _param, value: str | None) -> str | None:
    """A sub-command's `-c` wins; without it, the one given before the sub-command."""
    if value is not None:
        Settings.of(ctx).config = value
        return value
    return Settings.of(ctx).config


CONFIG_OPTION = click.option(
    "-c", "--config", "config_path", default=None, metavar="CONFIG", callback=_config_from_group, expose_value=True,
    help="Policy config file (default: $COOPFLOW_CONFIG, then ./config.yaml); also accepted before the command.",
)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="coopflow")
@click.option("-c", "--config", "config_path", default=None, metavar="CONFIG",
              help="Policy config file (default: $COOPFLOW_CONFIG, then ./config.yaml): run on this machine's store.")
@click.option("--server", default=None, metavar="URL",
              help="Send the command to this coopflow server (default: $COOPFLOW_SERVER, then `coopflow login`'s).")
@click.option("--local", is_flag=True, help="Run on this machine's store even when logged in to a server.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, server: str | None, local: bool) -> None:
    """coopflow: run an inter-agency cooperation agreement as durable YAML state machines."""
    if server and (local or config_path):
        raise click.UsageError(_("--server sends the command to a server: it goes without -c and --local"))
    ctx.obj = Settings(config_path, server, local)


@contextmanager
def deployment(config_path: str | None, create: bool = False):
    """The service layer over this machine's policy and store, for one local command (closed after it)."""
    from engine.service import Deployment

    opened = Deployment.open(config_path, create=create)
    language.settle_from_config(opened.policy.config.cli.language)
    try:
        yield opened
    finally:
        opened.close()


def _runtime(config_path: str | None):
    """Policy and store opened for a local command (engine/notify/cli.py uses it too)."""
    from engine.service import Deployment

    runtime = Deployment.open(config_path).runtime
    language.settle_from_config(runtime.policy.config.cli.language)
    return runtime


def main() -> None:
    """Entry point: user mistakes print a clear message and exit non-zero, never a traceback."""
    from engine.cli.client import ClientError
    from engine.views.text import line

    try:
        cli.main(prog_name="coopflow", standalone_mode=False)  # prog_name also names click's shell-completion variable
    except click.exceptions.Abort:
        click.echo(_("aborted"), err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except ClientError as exc:  # the server refused, or could not be reached: its words, our exit code
        click.echo(line(exc), err=True)
        sys.exit(exc.exit_code)
    except PolicyError as exc:
        for problem in exc.problems:
            click.echo(line(problem), err=True)
        click.echo(_("%(n)s problem(s) found", n=len(exc.problems)), err=True)
        sys.exit(1)
    except StoreError as exc:  # unreachable, full, read-only or foreign store: the operator's to fix
        click.echo(_("store unavailable: %(why)s", why=line(exc)), err=True)
        sys.exit(1)
    except CoopflowError as exc:
        click.echo(_("error: %(why)s", why=language.voice().reason(line(exc))), err=True)
        sys.exit(1)
    except MemoryError:
        click.echo(_("error: out of memory"), err=True)
        sys.exit(1)
    except Exception as exc:  # a bug, not the user's mistake: say so, keep the details in the log
        from loguru import logger

        from engine import logs  # noqa: F401  (importing it sets loguru's stderr handler to diagnose=False)

        logger.opt(exception=exc).error("internal error")  # every sink has diagnose=False: no local variables
        click.echo(_("internal error: %(error)s: %(why)s (details in the log; please report it)",
                     error=type(exc).__name__, why=line(exc)), err=True)
        sys.exit(3)
