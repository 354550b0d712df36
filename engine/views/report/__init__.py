"""The review meeting's report, computed from the store's history (docs/operators.md, section 6).

`coopflow report --period 2027H1 [--format md|html|pdf|docx]`, the API's /reports and the console
read it. The modules, by what they hold:

* `periods`: quarters, half years, years and date ranges, refused when not begun or before the agreement;
* `figures`: one streamed pass over the history, driven by the workflows' `subject:`, `meeting:` and
  `report:` keys (`build`);
* `document`: the official layout (Decree 30/2020/NĐ-CP) and the definitions printed in the report;
* `markdown`, `html` (Jinja2 templates beside the policy), `pdf` (WeasyPrint), `word` (python-docx).
"""

from __future__ import annotations

from engine.views.report.document import DEFINITIONS, human_duration, official
from engine.views.report.figures import ReportData, build, late_working_days
from engine.views.report.html import TemplateProblem, chart_svg, render_html
from engine.views.report.markdown import markdown
from engine.views.report.pdf import pdf
from engine.views.report.periods import (
                                         MAX_YEAR,
                                         MIN_YEAR,
                                         Period,
                                         PeriodError,
                                         PeriodRefused,
                                         cadence_label,
                                         of_policy,
                                         parse_period,
                                         parse_range,
)
from engine.views.report.word import docx

FORMATS = {"md": markdown, "html": render_html, "pdf": pdf, "docx": docx}  # pdf and docx give bytes

__all__ = ["DEFINITIONS", "FORMATS", "MAX_YEAR", "MIN_YEAR", "Period", "PeriodError", "PeriodRefused", "ReportData",
           "TemplateProblem", "build", "cadence_label", "chart_svg", "docx", "human_duration", "late_working_days", "markdown", "of_policy",
           "official", "parse_period", "parse_range", "pdf", "render_html"]
