"""`coopflow report`: quarter / year / date-range periods, refusals, and the official layout (Decree 30/2020/NĐ-CP) in HTML and DOCX.

A small scenario is played through the command line (in this process) under a stepped clock:
two information_exchange requests opened in the fourth quarter of 2027, one of them sent.
"""

from __future__ import annotations

import re
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from conftest import shipped_policy_with_store
from docx import Document

NOW = datetime.fromisoformat("2027-11-15T09:00:00+07:00")


@pytest.fixture
def config(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.delenv("COOPFLOW_STORE_URL", raising=False)
    return shipped_policy_with_store(tmp_path / "policy", tmp_path / "store.db")


@pytest.fixture
def played(cli_ok, config, stepped_clock) -> dict:
    """At NOW: R1 (sent) and R2 (still a draft), started as an operator would."""
    ok = cli_ok
    stepped_clock.set(NOW)

    r1 = ok("start", "information_exchange", "--as", "dic.focal_point", "--set", "requester=dic",
            "--set", "recipient=police", "--set", "subject=Danh sách thuê bao trả trước")
    ok("fire", r1, "send", "--as", "dic.focal_point", "--set", "dispatch_no=77/STTTT")
    r2 = ok("start", "information_exchange", "--as", "police.focal_point", "--set", "requester=police",
            "--set", "recipient=dic", "--set", "subject=Tài khoản mạng xã hội giả mạo")
    return {"r1": r1, "r2": r2}


def report(coopflow_cli, config, *args) -> tuple[int, str, str]:
    return coopflow_cli("report", *args, "-c", config)


@pytest.mark.parametrize("period,heading", [
    ("2027Q4", "# Báo cáo kết quả phối hợp quý IV năm 2027 (2027Q4)"),
    ("2027", "# Báo cáo kết quả phối hợp năm 2027 (2027)"),
], ids=["quarter", "year"])
def test_quarter_and_year_count_the_requests(coopflow_cli, config, played, period, heading):
    """A quarter and a year are accepted and count both requests opened in them."""
    code, out, err = report(coopflow_cli, config, "--period", period)
    assert code == 0, err
    assert out.startswith(heading)
    assert "| 2 | Phối hợp trao đổi thông tin | 2 | 0 | 0 | 0 | 0 | 2 |" in out


def test_quarter_before_the_requests_and_a_date_range(coopflow_cli, config, played):
    """2027Q3 (already over) holds nothing; --from/--to covering 15 November holds both."""
    code, out, err = report(coopflow_cli, config, "--period", "2027Q3")
    assert code == 0, err
    assert "|  | Tổng cộng | 0 | 0 | 0 | 0 | 0 | 0 |" in out
    code, out, err = report(coopflow_cli, config, "--from", "2027-11-01", "--to", "2027-11-15")
    assert code == 0, err
    assert "từ ngày 01/11/2027 đến ngày 15/11/2027" in out and "|  | Tổng cộng | 2 | 0 | 0 | 0 | 0 | 2 |" in out


@pytest.mark.parametrize("args", [("--period", "2028Q1"), ("--period", "2028"), ("--from", "2027-12-01", "--to", "2027-12-31")],
                         ids=["next-quarter", "next-year", "range"])
def test_a_future_period_is_refused(coopflow_cli, config, stepped_clock, args):
    stepped_clock.set(NOW)
    code, out, err = report(coopflow_cli, config, *args)
    assert code == 1 and out == ""
    assert "has not begun yet" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [("--period", "2022"), ("--period", "2023Q1"), ("--from", "2023-01-01", "--to", "2023-04-02")],
                         ids=["year", "quarter", "range"])
def test_a_period_before_the_agreement_is_refused(coopflow_cli, config, stepped_clock, args):
    """The shipped agreement took effect on 3 April 2023: a period over before that day is refused."""
    stepped_clock.set(NOW)
    code, out, err = report(coopflow_cli, config, *args)
    assert code == 1
    assert "before the agreement took effect on 03/04/2023" in err and "Traceback" not in err


@pytest.mark.parametrize("args,needle", [
    (("--period", "2027Q5"), "YYYYQ1"), (("--from", "2027-11-01"), "--from and --to"),
    (("--period", "2027", "--from", "2027-01-01", "--to", "2027-02-01"), "either --period"),
    (("--from", "2027-11-30", "--to", "2027-11-01"), "before --from"), (("--period", "2027Q4", "--format", "docx"), "--out"),
    (("--period", "2027Q4", "--format", "pdf"), "--out"),
], ids=["Q5", "from-alone", "both", "reversed", "docx-no-out", "pdf-no-out"])
def test_usage_mistakes_exit_2(coopflow_cli, config, stepped_clock, args, needle):
    stepped_clock.set(NOW)
    code, out, err = report(coopflow_cli, config, *args)
    assert code == 2 and needle in err and "Traceback" not in err


def test_html_is_an_official_document(coopflow_cli, config, played, tmp_path):
    """National title and motto, both agencies, number/symbol, place and date, title, every request, Nơi nhận, signatures."""
    target = tmp_path / "bao-cao.html"
    code, out, err = report(coopflow_cli, config, "--period", "2027Q4", "--format", "html", "--out", target)
    assert code == 0, err
    text = target.read_text(encoding="utf-8")
    assert "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" in text and "Độc lập - Tự do - Hạnh phúc" in text
    assert "SỞ THÔNG TIN VÀ TRUYỀN THÔNG TỈNH LÀO CAI" in text and "CÔNG AN TỈNH LÀO CAI" in text
    assert "Số: …/BC-STTTT-CA" in text and "Lào Cai, ngày 15 tháng 11 năm 2027" in text
    assert "BÁO CÁO" in text and "Kết quả phối hợp quý IV năm 2027" in text
    assert (f"<td>{played['r1']}</td><td>Danh sách thuê bao trả trước</td><td>77/STTTT</td><td>15/11/2027</td>"
            f"<td>Đã gửi công văn</td>") in text
    assert f"<td>{played['r2']}</td><td>Tài khoản mạng xã hội giả mạo</td><td>—</td><td>15/11/2027</td><td>Dự thảo" in text
    assert "Kỳ báo cáo chưa kết thúc: số liệu tính đến 09:00 15/11/2027." in text  # the quarter is not over yet
    assert "Nơi nhận:" in text and "Ủy ban nhân dân tỉnh Lào Cai (để báo cáo);" in text
    assert "GIÁM ĐỐC SỞ" in text and "GIÁM ĐỐC CÔNG AN TỈNH" in text
    assert "@page { size: A4" in text and "first applied event" not in text  # no English paragraph
    assert "2027-11-15" not in text  # Vietnamese dates only
    assert "<script" not in text.lower() and "http" not in text


def test_docx_has_the_same_blocks(coopflow_cli, config, played, tmp_path):
    """The Word file read back holds the same header, requests and signature blocks."""
    target = tmp_path / "bao-cao.docx"
    code, out, err = report(coopflow_cli, config, "--period", "2027Q4", "--format", "docx", "--out", target)
    assert code == 0, err and out == f"wrote {target}\n"
    doc = Document(str(target))
    cells = [c.text for t in doc.tables for row in t.rows for c in row.cells]
    paragraphs = [p.text for p in doc.paragraphs]
    header = "\n".join(cells[:2])
    assert "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" in header and "Độc lập - Tự do - Hạnh phúc" in header
    assert "SỞ THÔNG TIN VÀ TRUYỀN THÔNG TỈNH LÀO CAI" in header and "CÔNG AN TỈNH LÀO CAI" in header
    assert "Lào Cai, ngày 15 tháng 11 năm 2027" in header and "Số: …/BC-STTTT-CA" in header
    assert "BÁO CÁO" in paragraphs and "Kết quả phối hợp quý IV năm 2027" in paragraphs
    for instance, subject, number, state in ((played["r1"], "Danh sách thuê bao trả trước", "77/STTTT", "Đã gửi công văn"),
                                             (played["r2"], "Tài khoản mạng xã hội giả mạo", "—", "Dự thảo công văn yêu cầu")):
        i = cells.index(instance)
        assert cells[i + 1:i + 5] == [subject, number, "15/11/2027", state]
    assert "Nơi nhận:" in paragraphs and "- Ủy ban nhân dân tỉnh Lào Cai (để báo cáo);" in paragraphs
    signatures = "\n".join(cells[-2:])
    assert "GIÁM ĐỐC SỞ" in signatures and "GIÁM ĐỐC CÔNG AN TỈNH" in signatures
    assert doc.sections[0].page_width.mm == pytest.approx(210, abs=0.5)


def test_pdf_read_back_holds_the_document(coopflow_cli, config, played, tmp_path):
    """The PDF (WeasyPrint), read back with pdftotext, holds the national title, both agencies and every request."""
    target = tmp_path / "bao-cao.pdf"
    code, out, err = report(coopflow_cli, config, "--period", "2027Q4", "--format", "pdf", "-o", target)
    assert code == 0, err
    assert target.read_bytes().startswith(b"%PDF-")
    text = subprocess.run(["pdftotext", "-raw", str(target), "-"], check=True, capture_output=True, text=True).stdout
    flat = re.sub(r"\s+", "", text)  # -raw: content order, cell by cell; cells wrap long ids and subjects over lines
    assert "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" in text and "Độc lập - Tự do - Hạnh phúc" in text
    assert "SỞTHÔNGTINVÀTRUYỀNTHÔNGTỈNHLÀOCAI" in flat and "CÔNGANTỈNHLÀOCAI" in flat  # the head cell wraps
    for instance, subject in ((played["r1"], "Danh sách thuê bao trả trước"), (played["r2"], "Tài khoản mạng xã hội giả mạo")):
        assert instance in flat and re.sub(r"\s+", "", subject) in flat
    assert "Mốc kiểm toán" in text and "Nơi nhận:" in text


def test_check_refuses_a_report_template_that_does_not_render(coopflow_cli, config):
    """A province's edited template with an unknown variable is a policy mistake: check exits 1 naming the template."""
    template = config.parent / "templates" / "report" / "report.html.j2"
    template.write_text(template.read_text(encoding="utf-8").replace("{{ doc.motto }}", "{{ doc.slogan }}"), encoding="utf-8")
    code, out, err = coopflow_cli("check", "-c", config)
    assert code == 1 and "report.html.j2" in err and "slogan" in err and "Traceback" not in err
    template.unlink()
    code, out, err = coopflow_cli("check", "-c", config)
    assert code == 1 and "not found" in err


def test_docx_starts_from_the_province_word_template(coopflow_cli, config, played, tmp_path):
    """A report.docx in the templates folder is the base of the Word file: its page header and margins are kept."""
    from docx.shared import Mm

    base = Document()
    base.sections[0].header.paragraphs[0].text = "Mẫu của tỉnh: lưu hành nội bộ"
    base.sections[0].left_margin = Mm(35)
    base.save(str(config.parent / "templates" / "report" / "report.docx"))
    target = tmp_path / "bao-cao.docx"
    code, out, err = report(coopflow_cli, config, "--period", "2027Q4", "--format", "docx", "--out", target)
    assert code == 0, err
    doc = Document(str(target))
    assert doc.sections[0].header.paragraphs[0].text == "Mẫu của tỉnh: lưu hành nội bộ"
    assert doc.sections[0].left_margin.mm == pytest.approx(35, abs=0.5)
    assert "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" in doc.tables[0].cell(0, 1).text


def test_without_a_period_the_review_cadence_chooses(coopflow_cli, config, played):
    """No --period: the shipped agreement meets twice a year, so 15 November 2027 falls in 2027H2."""
    code, out, err = report(coopflow_cli, config)
    assert code == 0, err
    assert out.startswith("# Báo cáo kết quả phối hợp 6 tháng cuối năm 2027 (2027H2)")


def test_a_quarterly_agreement_reports_its_quarter(coopflow_cli, config, played):
    """An agreement whose reviews meet every quarter gets the quarter by default, with its requests."""
    rules = config.parent / "rules" / "reviews.yaml"
    text = rules.read_text(encoding="utf-8")
    assert "months: [6, 12]" in text
    rules.write_text(text.replace("months: [6, 12]", "months: [3, 6, 9, 12]"), encoding="utf-8")
    code, out, err = report(coopflow_cli, config)
    assert code == 0, err
    assert out.startswith("# Báo cáo kết quả phối hợp quý IV năm 2027 (2027Q4)")
    assert played["r1"] in out and played["r2"] in out
