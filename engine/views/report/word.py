"""The report as a Word document (python-docx): officials edit and sign it in Word.

A4, Times New Roman 13 pt, the same header, body and signature blocks as the HTML page
(`document.official`). When the report templates folder holds `report.docx`, its styles, margins
and headers are the base of the document (a province's own Word template).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.views.report.document import official
from engine.views.text import clean

BASE = "report.docx"


def docx(data: dict[str, Any]) -> bytes:
    """The report as a Word document (A4, Times New Roman) with the same header, body and signature blocks."""
    import io

    from docx import Document
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.shared import Mm, Pt

    folder = getattr(data, "templates", None)
    base = Path(folder) / BASE if folder else None
    layout = official(data)
    if base is not None and base.is_file():
        doc = Document(str(base))
    else:
        doc = Document()
        section = doc.sections[0]
        section.page_width, section.page_height = Mm(210), Mm(297)
        section.top_margin = section.bottom_margin = Mm(20)
        section.left_margin, section.right_margin = Mm(30), Mm(15)
        doc.styles["Normal"].font.name = "Times New Roman"
        doc.styles["Normal"].font.size = Pt(13)

    def cell_lines(cell, lines):
        cell.paragraphs[0].text = ""
        for i, (text, bold, italic) in enumerate(lines):
            par = cell.paragraphs[0] if i == 0 else cell.add_paragraph()
            par.alignment = WD_ALIGN_PARAGRAPH.CENTER
            run = par.add_run(text)
            run.bold, run.italic = bold, italic

    head = doc.add_table(rows=1, cols=2)
    cell_lines(head.cell(0, 0), [(a, True, False) for a in layout["agencies"]] + [(layout["number"], False, False)])
    cell_lines(head.cell(0, 1), [(layout["national"], True, False), (layout["motto"], True, False),
                                 (layout["date_line"], False, True)])
    for text in (layout["title"], layout["subtitle"]):
        par = doc.add_paragraph()
        par.alignment = WD_ALIGN_PARAGRAPH.CENTER
        par.add_run(text).bold = True
    for block in layout["body"]:
        kind = block[0]
        if kind in ("h2", "h3"):
            doc.add_paragraph().add_run(block[1]).bold = True
        elif kind == "p":
            doc.add_paragraph(block[1])
        elif kind == "def":
            par = doc.add_paragraph()
            par.add_run(f"{block[1]}: ").bold = True
            par.add_run(block[2])
        elif kind == "table":
            table = doc.add_table(rows=1, cols=len(block[1]))
            table.style = "Table Grid"
            for cell, text in zip(table.rows[0].cells, block[1], strict=False):
                cell.text = text
            for row in block[2]:
                for cell, value in zip(table.add_row().cells, row, strict=False):
                    cell.text = clean(value)
    par = doc.add_paragraph()
    run = par.add_run("Nơi nhận:")
    run.bold = run.italic = True
    for text in layout["recipients"]:
        doc.add_paragraph(f"- {text}")
    signs = doc.add_table(rows=1, cols=len(layout["signatures"]))
    for cell, s in zip(signs.rows[0].cells, layout["signatures"], strict=False):
        cell_lines(cell, [(s["agency"], True, False), (s["signer"], True, False), (s["note"], False, True)])
    buffer = io.BytesIO()
    doc.save(buffer)
    return buffer.getvalue()
