"""The report as a PDF (WeasyPrint), from the same HTML page and templates: A4, Debian's fonts (DejaVu, Liberation)."""

from __future__ import annotations

from typing import Any

from engine.exceptions import CoopflowError
from engine.views.report.html import render_html


def pdf(data: dict[str, Any]) -> bytes:
    """The print rendering of `render_html(data)` (its `@page` and `@media print` rules) as PDF bytes."""
    import logging

    try:
        from weasyprint import HTML
    except (ImportError, OSError) as exc:  # WeasyPrint or the system's Pango is missing
        raise CoopflowError("the PDF format needs WeasyPrint, Pango and fonts on this machine (pip install weasyprint; Debian: apt-get install "
                            f"libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core): {str(exc).splitlines()[0]}") from None

    logging.getLogger("weasyprint").setLevel(logging.ERROR)  # font-matching chatter is not the operator's business
    return HTML(string=render_html(data)).write_pdf()
