"""The instance page's state diagram as inline SVG, laid out by Graphviz (`dot -Tsvg`).

Labels are the policy's own titles (Vietnamese), the current state filled, the steps only the
system takes (deadlines) dashed. Graphviz escapes every label in its SVG output; the result is
cached per (workflow version, current state). Without Graphviz installed (`apt-get install
graphviz`) the page shows the same graph as a list only, which it always carries for screen readers.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import lru_cache

from loguru import logger

from engine.rules.duties import system_only

DOT = shutil.which("dot")
_PROLOG = re.compile(r"^.*?(?=<svg)", re.S)  # the XML declaration, DOCTYPE and comments before <svg>
_SIZE = re.compile(r'<svg width="[^"]*" height="[^"]*"')  # fixed points: the stylesheet sizes it instead


def _quoted(text: str) -> str:
    return '"' + " ".join(str(text).split()).replace("\\", "\\\\").replace('"', '\\"') + '"'


def dot_source(spec, current: str) -> str:
    """DOT text for `spec` with `current` marked: node labels are state titles, edge labels step titles."""
    out = ["digraph g {", '  graph [rankdir=TB, bgcolor="transparent", nodesep=0.3, ranksep=0.35];',
           '  node [shape=box, style="rounded", fontname="DejaVu Sans", fontsize=11, margin="0.12,0.06"];',
           '  edge [fontname="DejaVu Sans", fontsize=9, color="#555555"];']
    for sid, st in spec.states.items():
        style = ', style="rounded,filled,bold", fillcolor="#ffe08a", penwidth=2' if sid == current else ""
        extra = ", peripheries=2" if st.final else ""
        out.append(f"  {_quoted(sid)} [label={_quoted(st.title or sid)}, id={_quoted('node-' + sid)}{style}{extra}];")
    for t in spec.transitions:
        dashed = ', style=dashed' if system_only(t) else ""
        for source in spec.sources_of(t):
            out.append(f"  {_quoted(source)} -> {_quoted(t.dest)} [label={_quoted(t.title or t.trigger)}{dashed}];")
    out.append("}")
    return "\n".join(out) + "\n"


@lru_cache(maxsize=512)
def _render(dot: str, source: str) -> str | None:
    try:
        done = subprocess.run([dot, "-Tsvg"], input=source.encode("utf-8"), capture_output=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning("state diagram not drawn (Graphviz failed: {})", type(exc).__name__)
        return None
    text = _PROLOG.sub("", done.stdout.decode("utf-8"), count=1)
    return _SIZE.sub('<svg role="img" focusable="false"', text, count=1)


def svg(spec, current: str) -> str | None:
    """Inline SVG of the state diagram, or None when Graphviz is not installed or fails."""
    if DOT is None:
        return None
    return _render(DOT, dot_source(spec, current))
