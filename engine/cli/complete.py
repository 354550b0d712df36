"""Shell completion (click's `shell_complete`): workflow ids, instance ids and the triggers of an instance.

Completion runs the command line in a separate process for every TAB, with the options typed
so far: against a server it asks the API (as the logged-in person: only what they may see),
locally it reads the store through the service layer. It never fails loudly: no answer is no
completion. How to enable it per shell: docs/operators.md ("Shell completion").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # imported when completing: every command names these callbacks, few complete
    from click.shell_completion import CompletionItem


def _settings(ctx: click.Context):
    """The group's options as typed so far (completion does not run the group's callback)."""
    from engine.cli.main import Settings

    root = ctx.find_root().params
    return Settings(ctx.params.get("config_path") or root.get("config_path"), root.get("server"), bool(root.get("local")))


def _ask(ctx: click.Context, remote_call, local_call) -> list[Any]:
    from engine.cli.client import remote

    try:
        settings = _settings(ctx)
        server = remote(settings, ctx.params.get("actor"))
        if server is not None:
            return remote_call(server)
        from engine.service import Deployment

        with Deployment.open(settings.config, log_to_files=False) as d:
            return local_call(d)
    except Exception:  # noqa: BLE001  (a completion that cannot answer offers nothing)
        return []


def _items(names: list[str], incomplete: str) -> list[CompletionItem]:
    from click.shell_completion import CompletionItem

    return [CompletionItem(n) for n in sorted(set(names)) if n.startswith(incomplete)]


def workflow_ids(ctx: click.Context, _param, incomplete: str) -> list[CompletionItem]:
    return _items(_ask(ctx, lambda s: [w["id"] for w in s.call("GET", "/workflows")],
                       lambda d: list(d.policy.workflows)), incomplete)


def instance_ids(ctx: click.Context, _param, incomplete: str) -> list[CompletionItem]:
    return _items(_ask(ctx, lambda s: [r["id"] for r in s.call("GET", "/instances", params={"limit": 500})["items"]],
                       lambda d: [r["id"] for r in d.instances()]), incomplete)


def trigger_names(ctx: click.Context, _param, incomplete: str) -> list[CompletionItem]:
    """The triggers leaving the instance's current state."""
    instance = ctx.params.get("instance")
    if not instance:
        return []
    from urllib.parse import quote

    return _items(_ask(ctx, lambda s: [a["trigger"] for a in s.call("GET", f"/instances/{quote(instance, safe='')}")["actions"]],
                       lambda d: d.triggers(instance)), incomplete)
