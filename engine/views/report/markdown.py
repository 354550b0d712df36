"""The report as GitHub-flavoured Markdown (for the forge): the official document's body, as headings and tables."""

from __future__ import annotations

from typing import Any

from engine.views.report.document import official, vn
from engine.views.text import clean


def cell(text: Any) -> str:
    """Text made safe inside a Markdown table cell: one line, no control characters, no HTML, no cell breaks."""
    flat = " ".join(clean(text).split())
    return flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def markdown(data: dict[str, Any]) -> str:
    doc = official(data)
    out = [f"# Báo cáo kết quả phối hợp {cell(data['period_title'])} ({cell(data['period'])})", "",
           f"**{cell(' – '.join(doc['agencies']))}** · {cell(doc['number'])} · {cell(doc['date_line'])}", ""]
    for block in doc["body"]:
        kind = block[0]
        if kind == "h2":
            out += [f"## {cell(block[1])}", ""]
        elif kind == "h3":
            out += [f"### {cell(block[1])}", ""]
        elif kind == "p":
            out += [cell(block[1]), ""]
        elif kind == "def":
            out.append(f"- **{cell(block[1])}**: {cell(block[2])}")
        elif kind == "table":
            out.append("| " + " | ".join(cell(h) for h in block[1]) + " |")
            out.append("|" + "|".join("---:" if isinstance(v, int) else "---" for v in block[2][0]) + "|" if block[2]
                       else "|" + "---|" * len(block[1]))
            out += ["| " + " | ".join(str(v) if isinstance(v, int) else cell(v) for v in row) + " |" for row in block[2]]
            out.append("")
    out += ["", f"*Lập lúc {vn(data['generated_at'], True)}.*", ""]
    return "\n".join(out)
