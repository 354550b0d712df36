"""The web console in a real browser: Debian's Chromium driven by Playwright, against a real
`coopflow run` on a copy of the shipped policy, people added with `coopflow user add`.

The browser tests skip when /usr/bin/chromium is missing, except under CI (CI=true), where they
fail. Screenshots of the main pages go to docs/web/ (shown in docs/web.md).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import REPO_ROOT, clean_env, served_shipped_policy

from engine.i18n import catalog

CHROMIUM = "/usr/bin/chromium"
SHOTS = REPO_ROOT / "docs" / "web"
PASSWORD = "mật khẩu đủ dài 2027"
PEOPLE = ["nguyen_van_a", "nguyen_thi_b", "bui_van_nam", "tran_van_binh", "hoang_van_son", "dinh_quang_khai"]


# ---------------------------------------------------------------- catalogs (no browser needed)


def test_every_console_string_has_a_vietnamese_translation():
    translated = {m.id: m.string for m in catalog.read("vi") if m.id}
    for message in catalog.extract():
        if not message.id:
            continue
        msgid, text = message.id, translated.get(message.id)
        if isinstance(msgid, tuple):  # a plural (click's ngettext): Vietnamese has one form
            msgid, text = msgid[0], text[0] if text else None
        assert text, f"no Vietnamese for {msgid!r} ({message.locations[0]})"
        assert sorted(re.findall(r"%\(\w+\)s", msgid)) == sorted(re.findall(r"%\(\w+\)s", text)), msgid


def test_committed_mo_is_the_compiled_po():
    for lang in catalog.TRANSLATED:
        mo = catalog.po_path(lang).with_suffix(".mo")
        assert mo.read_bytes() == catalog.compiled(lang), f"{mo} is stale: run python -m engine.i18n.catalog"


def test_state_diagram_svg_keeps_titles_as_text(minimal_policy):
    from engine.policy.loader import load_policy
    from engine.server.web import graph

    spec = load_policy(minimal_policy).workflows["request"]
    state = next(iter(spec.states))
    hostile = spec.model_copy(update={"states": {**spec.states, state: spec.states[state].model_copy(
        update={"title": 'Hồ sơ <script>alert(1)</script> "x"'})}})
    drawn = graph.svg(hostile, state)
    if drawn is None:
        assert graph.DOT is None and os.environ.get("CI") != "true", "Graphviz must draw the diagram (apt-get install graphviz)"
        pytest.skip("Graphviz (dot) is not installed")
    assert drawn.startswith("<svg role=\"img\"") and "<script" not in drawn
    assert "Hồ sơ &lt;script&gt;alert(1)&lt;/script&gt; &quot;x&quot;" in drawn


# ---------------------------------------------------------------- the server and the browser


def coopflow(*args: str, config: Path, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args, "-c", str(config)], input=input, text=True,
                          capture_output=True, env=clean_env(), cwd=config.parent, timeout=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with served_shipped_policy(tmp_path_factory.mktemp("web"), PEOPLE, PASSWORD) as (url, config):
        yield {"url": url, "config": config}


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


class Person:
    """One person's browser window, signed in."""

    def __init__(self, browser, server, person: str, phone: bool = False):
        size = {"width": 390, "height": 844} if phone else {"width": 1280, "height": 900}
        self.context = browser.new_context(viewport=size, locale="vi-VN")
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.url = server["url"]
        self.page.goto(self.url + "/")
        assert "/login" in self.page.url
        self.page.get_by_label("Tên người dùng").fill(person)
        self.page.get_by_label("Mật khẩu").fill(PASSWORD)
        self.page.get_by_role("button", name="Đăng nhập").click()
        self.page.get_by_role("heading", name="Việc của tôi").wait_for()

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def start_request(self, subject: str) -> str:
        page = self.page
        page.get_by_role("link", name="Tạo yêu cầu").first.click()
        page.get_by_role("link", name="Phối hợp trao đổi thông tin").click()
        page.get_by_label("Bên yêu cầu").select_option("dic")
        page.get_by_label("Bên được yêu cầu").select_option("police")
        page.get_by_label("Nội dung yêu cầu").fill(subject)
        page.get_by_role("button", name="Tạo").click()
        page.wait_for_url(re.compile(r"/i/information_exchange-"))
        return page.url.rsplit("/", 1)[1]

    def step(self, button: str, **fields: str) -> None:
        form = self.page.locator("form.action", has=self.page.get_by_role("button", name=button))
        for label, value in fields.items():
            form.get_by_label(label).fill(value)
        with self.page.expect_navigation():
            form.get_by_role("button", name=button).click()

    def state(self) -> str:
        return self.page.locator("p.state").inner_text()

    def close(self) -> None:
        self.context.close()


def test_a_request_from_dic_to_police_and_back(server, browser):
    dic = Person(browser, server, "nguyen_van_a")
    dic.shot("01-viec-cua-toi-trong")
    dic.page.get_by_role("link", name="Tạo yêu cầu").first.click()
    dic.page.get_by_role("link", name="Phối hợp trao đổi thông tin").click()
    assert dic.page.get_by_label("Nội dung yêu cầu").get_attribute("required") is not None
    dic.shot("02-tao-yeu-cau")
    ident = dic.start_request("Xin thông tin thuê bao 0912 345 678")
    assert dic.state() == "Dự thảo công văn yêu cầu"
    dic.step("Gửi công văn yêu cầu", **{"Số công văn": "125/STTTT"})
    assert "Đã thực hiện: Gửi công văn yêu cầu." in dic.page.locator(".notice").inner_text()
    assert dic.state() == "Đã gửi công văn"
    assert "Coi như đã nhận công văn" in dic.page.locator("main").inner_text()  # what fires at expiry
    # DIC now waits on the police
    dic.page.goto(server["url"] + "/")
    assert "Xin thông tin thuê bao" in dic.page.locator("section", has_text="Đang chờ cơ quan khác").inner_text()

    police = Person(browser, server, "nguyen_thi_b")
    owed = police.page.locator("section", has_text="Việc tôi cần làm")
    assert "Xin thông tin thuê bao" in owed.inner_text()
    assert re.search(r"còn \d+ ngày làm việc|quá hạn", owed.inner_text())
    police.shot("03-viec-cua-toi-cong-an")
    owed.get_by_role("link", name=re.compile("Xin thông tin thuê bao")).click()
    police.step("Xác nhận đã nhận công văn")
    assert police.state().startswith("Đang xử lý")
    police.step("Trả lời yêu cầu", **{"Nội dung trả lời / số công văn trả lời": "Công văn 88/CAT"})
    assert police.state() == "Đã trả lời"
    history = police.page.locator("table.timeline").inner_text()
    for who in ("nguyen_van_a", "nguyen_thi_b"):
        assert who in history
    assert re.search(r"\d{2}/\d{2}/\d{4} \d{2}:\d{2}", history)  # dd/mm/yyyy hh:mm
    police.shot("04-ho-so-da-tra-loi")
    assert ident in police.page.url
    dic.close()
    police.close()


def test_refused_step_shows_its_reason_in_vietnamese_and_changes_nothing(server, browser):
    dic = Person(browser, server, "nguyen_van_a")
    ident = dic.start_request("Xin sao kê tài khoản")
    dic.step("Gửi công văn yêu cầu", **{"Số công văn": "126/STTTT"})
    staff, focal = Person(browser, server, "bui_van_nam"), Person(browser, server, "nguyen_thi_b")
    for p in (staff, focal):
        p.page.goto(f"{server['url']}/i/{ident}")
    focal.step("Xác nhận đã nhận công văn")  # the staff member's page is now out of date
    staff.step("Xác nhận đã nhận công văn")
    error = staff.page.locator(".error").inner_text()
    assert "không thể thực hiện bước 'acknowledge' ở trạng thái 'in_progress'" in error
    assert staff.state().startswith("Đang xử lý")
    rows = staff.page.locator("table.timeline tbody tr")
    assert "bị từ chối" in rows.last.inner_text() and "bui_van_nam" in rows.last.inner_text()
    assert sum("đã thực hiện" in r for r in rows.all_inner_texts()) == 3  # start, send, acknowledge
    for p in (dic, staff, focal):
        p.close()


def test_both_leaders_agree_and_the_meeting_is_convened(server, browser):
    dic = Person(browser, server, "tran_van_binh")
    dic.page.get_by_role("link", name="Tạo yêu cầu").first.click()
    dic.page.get_by_role("link", name="Họp giao ban đột xuất").click()
    dic.page.get_by_label("Vấn đề cần giải quyết").fill("Phối hợp xử lý tin giả về dịch bệnh")
    dic.page.get_by_role("button", name="Tạo").click()
    dic.page.wait_for_url(re.compile(r"/i/emergency_review-"))
    ident = dic.page.url.rsplit("/", 1)[1]
    meeting = (datetime.now() + timedelta(days=10)).replace(hour=9, minute=0)
    dic.step("Đồng ý: Lãnh đạo đồng ý tổ chức họp",
             **{"Thời gian họp": meeting.strftime("%Y-%m-%dT%H:%M"), "Địa điểm họp": "Hội trường Sở"})
    assert "đã ghi nhận sự đồng ý của dic: 1/2, đang chờ police" in dic.page.locator(".notice").inner_text()
    consents = dic.page.locator("section", has_text="Sự đồng ý").first.inner_text()
    assert "dic.leader:tran_van_binh đã đồng ý lúc" in consents and "Đang chờ: Công an tỉnh Lào Cai" in consents
    # a leader may take it back, and give it again
    dic.page.get_by_role("button", name="Rút sự đồng ý").click()
    dic.page.wait_for_load_state()
    assert "dic đã rút sự đồng ý" in dic.page.locator(".notice").inner_text()
    dic.step("Đồng ý: Lãnh đạo đồng ý tổ chức họp")
    dic.shot("05-hop-dot-xuat-cho-dong-y")

    police = Person(browser, server, "hoang_van_son")
    police.page.locator("section", has_text="Việc tôi cần làm").get_by_role(
        "link", name=re.compile("Phối hợp xử lý tin giả")).click()
    police.step("Đồng ý: Lãnh đạo đồng ý tổ chức họp")
    assert police.state() == "Đã thống nhất, triệu tập cuộc họp"
    assert police.page.locator("ol.graph li[aria-current=step]").inner_text().startswith("Đã thống nhất")
    steps = police.page.locator("table.timeline tbody").inner_text()
    assert "Rút sự đồng ý: Lãnh đạo đồng ý tổ chức họp" in steps and "Đồng ý: Lãnh đạo đồng ý tổ chức họp" in steps
    drawn = police.page.locator("figure.diagram svg")  # Graphviz's drawing, the current state filled
    assert "Đã thống nhất, triệu tập cuộc họp" in drawn.text_content()
    assert police.page.locator("figure.diagram g#node-convened path").get_attribute("fill") == "#ffe08a"
    assert police.page.locator("figure.diagram g#node-proposed path").get_attribute("fill") == "none"
    police.shot("06-hop-dot-xuat-da-trieu-tap")
    police.page.get_by_role("link", name="Lịch").click()
    assert "Họp giao ban đột xuất: Phối hợp xử lý tin giả về dịch bệnh" in police.page.locator("main").inner_text()
    police.shot("07-lich")
    police.page.get_by_role("link", name="Tổng quan").click()
    police.shot("08-tong-quan")
    police.page.get_by_role("link", name="Báo cáo").click()
    assert police.page.get_by_role("link", name="Tải HTML").count() == 1
    for name, media, magic in (("Tải PDF", "application/pdf", b"%PDF-"), ("Tải Word", "officedocument", b"PK")):
        href = police.page.get_by_role("link", name=name).get_attribute("href")
        got = police.page.request.get(server["url"] + href)  # the signed-in session's cookies
        assert got.ok and media in got.headers["content-type"] and got.body().startswith(magic), (name, got.status)
    police.page.goto(server["url"] + "/reports?period=2099H1")
    assert "chưa bắt đầu" in police.page.locator(".error").inner_text()
    police.page.get_by_role("link", name="Báo cáo").click()
    police.shot("09-bao-cao")
    assert ident
    dic.close()
    police.close()


def test_hostile_subject_stays_text(server, browser):
    dic = Person(browser, server, "nguyen_van_a")
    dic.start_request("<script>alert(1)</script>")
    assert "<script>alert(1)</script>" in dic.page.locator("dl.fields").inner_text()
    assert dic.page.locator("script:not([src])").count() == 0
    dic.page.goto(server["url"] + "/")
    assert "<script>alert(1)</script>" in dic.page.locator("main").inner_text()
    assert dic.dialogs == []
    dic.close()


def test_form_without_csrf_token_or_with_a_bad_value_is_refused(server, browser):
    dic = Person(browser, server, "nguyen_van_a")
    dic.start_request("Yêu cầu thử CSRF")
    form = dic.page.locator("form.action", has=dic.page.get_by_role("button", name="Gửi công văn yêu cầu"))
    form.get_by_label("Số công văn").fill("127/STTTT")
    form.locator("input[name=csrf]").evaluate("e => e.remove()")
    with dic.page.expect_navigation():
        form.get_by_role("button", name="Gửi công văn yêu cầu").click()
    assert "Biểu mẫu không có mã bảo vệ (CSRF) hợp lệ. Không có gì thay đổi" in dic.page.locator("main").inner_text()
    dic.page.go_back()
    dic.page.reload()
    assert dic.state() == "Dự thảo công văn yêu cầu"
    # a value the browser would let through but the field's type refuses: named by its title
    dic.page.goto(server["url"] + "/start/emergency_review")
    csrf = dic.page.locator("main input[name=csrf]").get_attribute("value")
    answer = dic.page.request.post(server["url"] + "/start/emergency_review", form={
        "csrf": csrf, "key": "bad-value", "role": "dic.focal_point", "f.issue": "Thử", "f.meeting_at": "ngày mai"})
    assert answer.status == 422
    assert "“Thời gian họp”: giá trị “ngày mai” không hợp lệ." in answer.text()
    dic.close()


def test_sign_in_errors_language_switch_and_phone_layout(server, browser):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(server["url"] + "/login")
    page.get_by_label("Tên người dùng").fill("nguyen_van_a")
    page.get_by_label("Mật khẩu").fill("sai mật khẩu rồi")
    page.get_by_role("button", name="Đăng nhập").click()
    assert page.locator(".error").inner_text() == "Sai tên người dùng hoặc mật khẩu."
    cookie = next(c for c in context.cookies() if c["name"] == "coopflow_login_csrf")
    assert cookie["httpOnly"]
    context.close()

    phone = Person(browser, server, "nguyen_thi_b", phone=True)
    session = next(c for c in phone.context.cookies() if c["name"] == "coopflow_session")
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    width = phone.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
    phone.shot("10-dien-thoai")
    phone.page.get_by_role("link", name="English").click()
    phone.page.get_by_role("heading", name="My tasks").wait_for()
    phone.page.get_by_role("link", name="Tiếng Việt").click()
    phone.page.get_by_role("heading", name="Việc của tôi").wait_for()
    phone.close()


def test_signed_out_pages_and_posts_go_to_sign_in_and_a_read_only_token_posts_nothing(server):
    import httpx

    with httpx.Client(base_url=server["url"], follow_redirects=False, timeout=30) as web:
        for method, path in [("GET", "/"), ("GET", "/start"), ("GET", "/start/emergency_review"), ("GET", "/overview"),
                             ("GET", "/calendar"), ("GET", "/reports"), ("GET", "/reports/2026H2.md"), ("GET", "/audit"),
                             ("GET", "/password"), ("GET", "/i/information_exchange-x"), ("POST", "/i/information_exchange-x"),
                             ("POST", "/start/emergency_review"), ("POST", "/logout"), ("POST", "/password")]:
            answer = web.request(method, path, data={"trigger": "send"} if method == "POST" else None)
            assert (answer.status_code, answer.headers.get("location")) == (303, "/login?next=" + path), (method, path)
        issued = coopflow("token", "issue", "nguyen_van_a", "--read-only", config=server["config"])
        assert issued.returncode == 0, issued.stderr
        reader = {"Authorization": "Bearer " + issued.stdout.strip()}
        assert web.get("/start", headers=reader).status_code == 200
        refused = web.post("/start/emergency_review", headers=reader, data={"role": "dic.focal_point", "f.issue": "Thử"})
        assert refused.status_code == 403  # a bearer token has no session, so no CSRF token: refused before anything is read
        assert "Biểu mẫu không có mã bảo vệ (CSRF) hợp lệ" in refused.text
    listed = coopflow("status", "--json", config=server["config"])
    assert "Thử" not in listed.stdout
