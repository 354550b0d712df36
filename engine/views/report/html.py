"""The report as one self-contained HTML page (A4, print-ready), from the Jinja2 templates beside the policy.

The templates are `report.html.j2` (and what it includes, e.g. `report.css`) in the folder named by
`paths.report_templates` (default `templates/report/`), so that a province may adapt the layout.
They receive `doc` (the official layout of `document.official`), `data` (the figures) and
`chart` (the response-time chart as inline SVG). `coopflow check` renders them on a sample report.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from engine.exceptions import CoopflowError
from engine.views.report.document import official
from engine.views.text import clean

TEMPLATE = "report.html.j2"


class TemplateProblem(CoopflowError):
    """The report's templates are missing or do not render (a policy mistake, reported without a traceback)."""


def _h(text: Any) -> str:
    return html.escape(clean(text), quote=True)


def chart_svg(parties: list[dict[str, Any]]) -> str:
    """An inline SVG bar chart: median and worst response time per party, in hours."""
    rows = [p for p in parties if p["responses"]]
    if not rows:
        return "<p>Chưa có phản hồi nào trong kỳ để vẽ biểu đồ.</p>"
    peak = max(p["worst_seconds"] for p in rows) / 3600 or 1
    label_w, bar_w, bar_h, gap = 170, 420, 14, 12
    height = 30 + len(rows) * (2 * bar_h + gap) + 20
    width = label_w + bar_w + 130
    parts = [f'<svg role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" aria-label="Thời gian phản hồi theo cơ quan (giờ)">',
             '<title>Thời gian phản hồi theo cơ quan (giờ): trung vị và lâu nhất</title>',
             f'<rect class="median" x="{label_w}" y="4" width="12" height="10"/>'
             f'<text x="{label_w + 16}" y="13">trung vị</text>',
             f'<rect class="worst" x="{label_w + 90}" y="4" width="12" height="10"/>'
             f'<text x="{label_w + 106}" y="13">lâu nhất</text>']
    y = 30
    for p in rows:
        median_h, worst_h = p["median_seconds"] / 3600, p["worst_seconds"] / 3600
        parts.append(f'<text x="0" y="{y + bar_h + 4}">{_h(p["short"])}</text>')
        for cls, hours, dy in (("median", median_h, 0), ("worst", worst_h, bar_h)):
            w = max(1.0, bar_w * hours / peak)
            parts.append(f'<rect class="{cls}" x="{label_w}" y="{y + dy}" width="{w:.1f}" height="{bar_h - 2}"/>')
            parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + dy + bar_h - 4}">{hours:.1f} giờ</text>')
        y += 2 * bar_h + gap
    parts.append("</svg>")
    return "".join(parts)


def environment(folder: Path) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder), encoding="utf-8"), undefined=jinja2.StrictUndefined,
                             autoescape=True, keep_trailing_newline=True)
    env.filters["clean"] = clean
    return env


def render_html(data: dict[str, Any], folder: Path | None = None) -> str:
    """The page from the templates in `folder` (default: the folder the figures were built for, `data.templates`)."""
    folder = folder or getattr(data, "templates", None)
    if folder is None:
        raise TemplateProblem("no folder of report templates given (paths.report_templates)")
    try:
        template = environment(Path(folder)).get_template(TEMPLATE)
    except jinja2.TemplateNotFound:
        raise TemplateProblem(f"report template {Path(folder) / TEMPLATE} not found: copy templates/report/ from the "
                              f"shipped policy beside config.yaml, or set paths.report_templates") from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(f"{exc.filename or TEMPLATE}:{exc.lineno}: {exc.message}") from None
    try:
        return template.render(doc=official(data), data=data, chart=Markup(chart_svg(data["parties"])))
    except jinja2.UndefinedError as exc:
        raise TemplateProblem(f"report template {TEMPLATE}: {exc.message} (the template receives doc, data and chart)") from None


def problems(policy) -> list[str]:
    """What is wrong with the report's templates, rendered on a sample report (`coopflow check`); [] when they render."""
    if policy.report_templates is None:
        return []  # a policy without report templates: md and docx work, html and pdf say what is missing
    from datetime import timedelta

    from engine import clock
    from engine.views.report.figures import Tally, assemble
    from engine.views.report.periods import parse_period

    now = clock.now().astimezone(policy.tz)
    period = parse_period(str(now.year), policy.tz)
    sample = assemble(policy, period, Tally(policy, period, {}), {"seq": 1, "hash": "0" * 64, "at": now.isoformat()},
                      now + timedelta(days=366))
    sample.templates = policy.report_templates
    try:
        render_html(sample)
    except TemplateProblem as exc:
        return [str(exc)]
    except Exception as exc:  # a filter applied to the wrong type, a bad loop: still the template's mistake
        return [f"report template {TEMPLATE}: {type(exc).__name__}: {exc}"]
    return []
