"""The report as a PDF (WeasyPrint), from the same HTML page and templates: A4, Debian's fonts (DejaVu, Liberation)."""

from __future__ import annotations

from typing import Any

from engine.views.report.html import render_html


def pdf(data: dict[str, Any]) -> bytes:
    """The print rendering of `render_html(data)` (its `@page` and `@media print` rules) as PDF bytes."""
    import logging

    from weasyprint import HTML

    logging.getLogger("weasyprint").setLevel(logging.ERROR)  # font-matching chatter is not the operator's business
    return HTML(string=render_html(data)).write_pdf()
