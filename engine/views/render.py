"""What operators read of a simulation: the simulator's timeline as a rich table.

(Instances, history, the overview and upcoming are rendered by engine/cli/tables.py, from the
service layer's data or the HTTP API's, so that the local and the remote CLI print the same.)
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from engine.views.text import cell


def _console() -> Console:
    return Console(file=sys.stdout, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


def timeline(policy, entries) -> None:
    """The simulator's timeline as a table."""
    table = Table(title=f"{len(entries)} event(s) simulated")
    for column in ("at", "kind", "workflow", "instance", "event", "outcome"):
        table.add_column(column)
    for e in entries:
        host = f" (host {e.host})" if e.host else ""
        table.add_row(cell(e.at[:16].replace("T", " ")), cell(e.kind), cell(e.workflow), cell(e.instance), cell(e.trigger or "start"),
                      cell(f"{e.outcome}: {e.detail}{host}"))
    _console().print(table)
