"""The `coopflow` command line: one click command per operator or administrator task."""

from __future__ import annotations

import sys

import click

from engine.exceptions import CoopflowError, PolicyError
from engine.policy import load_policy
from engine.schema import SCHEMAS, render

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
    policy = load_policy(config_path)
    click.echo(
        f"ok: {len(policy.workflows)} workflows, {len(policy.schedules)} schedules, "
        f"{len(policy.event_rules)} event rules; policy {policy.digest[:12]}"
    )


@cli.command()
@click.argument("kind", type=click.Choice(sorted(SCHEMAS)), default="workflow")
def schema(kind: str) -> None:
    """Print the JSON Schema (draft-07) of a policy file kind, for editors."""
    click.echo(render(kind), nl=False)


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
            click.echo(str(problem), err=True)
        click.echo(f"{len(exc.problems)} problem(s) found", err=True)
        sys.exit(1)
    except CoopflowError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
