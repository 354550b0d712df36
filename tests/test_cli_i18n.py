"""The CLI in Vietnamese and in English: the real `coopflow` in a subprocess on a copy of the shipped
policy, its language chosen by the locale (LC_ALL, LC_MESSAGES, LANG) or config.yaml's `cli.language`.

The rest of the suite reads English (tests/conftest.py sets LC_MESSAGES); each run here sets its own
locale. That every string has a Vietnamese translation and that the .mo is current is checked once,
for the console and the CLI together, by tests/test_web.py (one shared catalog).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import shipped_policy_with_store

from engine.cli.language import Voice, of_locale
from engine.i18n import catalog

LOCALE_VARIABLES = ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE")
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    return shipped_policy_with_store(tmp_path / "policy", tmp_path / "store.db")


@pytest.fixture(scope="module")
def sent(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One store shared by the tests that only read or are refused: its config.yaml and a sent request."""
    root = tmp_path_factory.mktemp("sent")
    config = shipped_policy_with_store(root / "policy", root / "store.db")
    return config, sent_request(config)


def with_cli_language(config: Path, language: str | None) -> Path:
    """A config.yaml beside `config` (same policy folders, same store) whose `cli.language` is `language`
    (None: without the key)."""
    text = config.read_text(encoding="utf-8")
    assert "cli:\n  language: vi\n" in text, "the shipped config.yaml sets cli.language"
    other = config.with_name(f"config-{language or 'default'}.yaml")
    other.write_text(text.replace("cli:\n  language: vi\n", f"cli:\n  language: {language}\n" if language else ""),
                     encoding="utf-8")
    return other


def coopflow(config: Path, *args: str, **locale: str) -> subprocess.CompletedProcess:
    """`coopflow ARGS -c CONFIG` with exactly the locale variables given (none: no locale at all)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COOPFLOW_") and k not in LOCALE_VARIABLES}
    env.update(locale, COLUMNS="250")
    return subprocess.run([sys.executable, "-m", "engine", *args, "-c", str(config)], capture_output=True, text=True,
                          encoding="utf-8", env=env, cwd=config.parent, timeout=120)


def sent_request(config: Path) -> str:
    """An information request started and sent (in English: the language does not matter here)."""
    started = coopflow(config, "start", "information_exchange", "--as", "dic.focal_point", "--set", "requester=dic",
                       "--set", "recipient=police", "--set", "subject=Xin thông tin thuê bao", LANG="en_US.UTF-8")
    assert started.returncode == 0, started.stderr
    instance = started.stdout.splitlines()[0]
    sent = coopflow(config, "fire", instance, "send", "--as", "dic.focal_point", "--set", "dispatch_no=125/STTTT",
                    LANG="en_US.UTF-8")
    assert sent.stdout.strip() == "applied: drafted -> sent", sent.stdout + sent.stderr
    return instance


REFUSED_VI = ("bị từ chối: dic.staff không được thực hiện bước 'acknowledge' "
              "(chỉ dành cho: police.focal_point, police.staff)")
REFUSED_EN = "refused: dic.staff may not fire 'acknowledge' (allowed: police.focal_point, police.staff)"


def test_a_refused_fire_is_said_in_the_language_of_the_locale(policy: Path) -> None:
    instance = sent_request(policy)
    fire = ("fire", instance, "acknowledge", "--as", "dic.staff")
    vi = coopflow(policy, *fire, LANG="vi_VN.UTF-8")
    assert (vi.returncode, vi.stdout.strip()) == (1, REFUSED_VI), vi.stderr
    en = coopflow(policy, *fire, LANG="en_US.UTF-8")
    assert (en.returncode, en.stdout.strip()) == (1, REFUSED_EN), en.stderr
    wrong_state = coopflow(policy, "fire", instance, "answer", "--as", "police.focal_point", "--set", "answer=x",
                           LANG="vi_VN.UTF-8")
    assert wrong_state.stdout.strip() == ("bị từ chối: không thể thực hiện bước 'answer' ở trạng thái 'sent' "
                                          "(các bước có thể lúc này: acknowledge, deemed_received, withdraw)")
    applied = coopflow(policy, "fire", instance, "acknowledge", "--as", "police.focal_point:nguyen_thi_b",
                       LANG="vi_VN.UTF-8")
    assert (applied.returncode, applied.stdout.strip()) == (0, "đã thực hiện: chuyển từ 'sent' sang 'in_progress'")


def test_the_status_table_speaks_vietnamese_with_dates_as_dd_mm_yyyy(sent: tuple[Path, str]) -> None:
    policy, instance = sent
    vi = coopflow(policy, "status", "-w", "information_exchange", LANG="vi_VN.UTF-8")
    assert vi.returncode == 0, vi.stderr
    header = next(line for line in vi.stdout.splitlines() if "hồ sơ" in line and "┃" in line)
    assert [cell.strip() for cell in header.strip("┃ ").split("┃")] == [
        "hồ sơ", "quy trình", "trạng thái", "cập nhật", "hạn xử lý tiếp theo"]
    assert "1 hồ sơ" in vi.stdout  # the title counts them
    row = next(line for line in vi.stdout.splitlines() if instance in line)
    today = datetime.now(ZONE)
    assert re.search(rf"│ {today:%d/%m/%Y} \d\d:\d\d +│", row), row  # updated: dd/mm/yyyy HH:MM in the agreement's zone
    assert re.search(r"│ \d\d/\d\d/\d{4} \d\d:\d\d → deemed_received", row), row  # the deadline

    en = coopflow(policy, "status", "-w", "information_exchange", LANG="en_US.UTF-8")
    assert "┃ instance " in en.stdout and "hồ sơ" not in en.stdout
    assert re.search(rf"│ {today:%Y-%m-%d} \d\d:\d\d +│", next(x for x in en.stdout.splitlines() if instance in x))


def test_one_instance_and_its_history_in_vietnamese(sent: tuple[Path, str]) -> None:
    policy, instance = sent
    coopflow(policy, "fire", instance, "acknowledge", "--as", "dic.staff", LANG="en_US.UTF-8")
    status = coopflow(policy, "status", instance, LANG="vi_VN.UTF-8").stdout.splitlines()
    assert status[1] == "trạng thái: sent — Đã gửi công văn"
    assert re.fullmatch(r"hạn xử lý: \d\d/\d\d/\d{4} \d\d:\d\d → hết hạn thì thực hiện deemed_received", status[2])
    history = coopflow(policy, "history", instance, LANG="vi_VN.UTF-8").stdout
    assert f"lịch sử hồ sơ {instance}" in history
    assert "┃ # ┃ thời gian " in history and "người thực hiện" in history and "kết quả" in history
    assert "bị từ chối: dic.staff không được thực hiện bước 'acknowledge'" in history


@pytest.mark.parametrize(("locale", "config_language", "expected"), [
    ({"LANG": "C.UTF-8"}, "vi", "vi"),                       # a locale that names no language: the config's
    ({"LANG": "C.UTF-8"}, "en", "en"),
    ({}, "vi", "vi"),                                         # no locale at all: the config's
    ({"LANG": "en_US.UTF-8"}, "vi", "en"),                   # a locale that names a language wins
    ({"LANG": "fr_FR.UTF-8"}, "vi", "en"),                   # one we have no catalog for: English
    ({"LANG": "en_US.UTF-8", "LC_MESSAGES": "vi_VN.UTF-8"}, "en", "vi"),  # POSIX order: LC_MESSAGES before LANG
    ({"LC_ALL": "en_US.UTF-8", "LC_MESSAGES": "vi_VN.UTF-8"}, "vi", "en"),  # LC_ALL before both
], ids=["C-config-vi", "C-config-en", "unset-config-vi", "en-over-config", "fr", "lc-messages", "lc-all"])
def test_the_locale_then_the_config_choose_the_language(sent: tuple[Path, str], locale: dict[str, str],
                                                         config_language: str, expected: str) -> None:
    policy, instance = sent
    refused = coopflow(with_cli_language(policy, config_language), "fire", instance, "acknowledge", "--as", "dic.staff",
                       **locale)
    assert refused.stdout.strip() == {"vi": REFUSED_VI, "en": REFUSED_EN}[expected], refused.stderr


def test_a_config_without_the_key_speaks_vietnamese(sent: tuple[Path, str]) -> None:
    check = coopflow(with_cli_language(sent[0], None), "status", LANG="C.UTF-8")
    assert check.returncode == 0, check.stderr
    assert "ai phải thực hiện bước tiếp theo" in check.stdout


def test_a_bad_language_in_the_config_is_refused_where_it_is_written(sent: tuple[Path, str]) -> None:
    check = coopflow(with_cli_language(sent[0], "fr"), "check", LANG="vi_VN.UTF-8")
    assert check.returncode == 1
    assert re.search(r"config-fr\.yaml:\d+:\d+: 'language' must be 'vi' or 'en', found 'fr'$", check.stderr.splitlines()[0])
    assert check.stderr.splitlines()[-1] == "phát hiện 1 lỗi"


def test_an_unknown_instance_is_named_in_vietnamese(sent: tuple[Path, str]) -> None:
    missing = coopflow(sent[0], "status", "information_exchange-00000000", LANG="vi_VN.UTF-8")
    assert (missing.returncode, missing.stderr.strip()) == (1, "lỗi: không có hồ sơ 'information_exchange-00000000'")
    english = coopflow(sent[0], "status", "information_exchange-00000000", LANG="en_US.UTF-8")
    assert english.stderr.strip() == "error: unknown instance 'information_exchange-00000000'"
    typo = coopflow(sent[0], "status", "--state", "sentt", LANG="vi_VN.UTF-8")
    assert typo.returncode == 2
    assert "Lỗi: không có trạng thái 'sentt'; có phải ý bạn là 'sent'?" in typo.stderr, typo.stderr  # click's "Error:" too


def test_json_is_the_same_in_every_language(sent: tuple[Path, str]) -> None:
    policy, instance = sent
    for args in (("status", instance, "--json"), ("history", instance, "--json"), ("upcoming", "--days", "200", "--json")):
        vi = coopflow(policy, *args, LANG="vi_VN.UTF-8")
        en = coopflow(policy, *args, LANG="en_US.UTF-8")
        assert vi.returncode == en.returncode == 0, vi.stderr + en.stderr
        assert vi.stdout == en.stdout, args
    data = json.loads(coopflow(policy, "status", instance, "--json", LANG="vi_VN.UTF-8").stdout)
    assert datetime.fromisoformat(data["created_at"]).utcoffset() is not None  # ISO 8601, with the zone's offset


def test_the_upcoming_table_and_overview_in_vietnamese(sent: tuple[Path, str]) -> None:
    policy = sent[0]
    upcoming = coopflow(policy, "upcoming", "--days", "400", LANG="vi_VN.UTF-8").stdout
    assert "┃ thời gian " in upcoming and "┃ chi tiết " in upcoming
    assert re.search(r"│ 01/06/2027 08:00 │ lịch định kỳ .*— chủ trì: (dic|police)", upcoming), upcoming
    assert "ngày tới (giờ Asia/Ho_Chi_Minh)" in upcoming
    overview = coopflow(policy, "status", LANG="vi_VN.UTF-8").stdout
    assert re.search(r"hồ sơ đang mở theo điều khoản: 1 \(tính đến \d\d/\d\d/\d{4} \d\d:\d\d\)", overview), overview


# ---------------------------------------------------------------- the pieces, without a process


@pytest.mark.parametrize(("locale", "language"), [
    ("vi_VN.UTF-8", "vi"), ("vi", "vi"), ("vi_VN@saigon", "vi"), ("en_US.UTF-8", "en"), ("en", "en"), ("fr_FR", "en"),
    ("C", None), ("C.UTF-8", None), ("C.utf8", None), ("POSIX", None), ("", None),
])
def test_what_a_locale_names(locale: str, language: str | None) -> None:
    assert of_locale(locale) == language


def test_vietnamese_numbers_and_times() -> None:
    vi, en = Voice("vi"), Voice("en")
    assert (vi.number(1234567), en.number(1234567)) == ("1.234.567", "1,234,567")
    at = datetime(2027, 6, 1, 8, 5, tzinfo=ZONE)
    assert (vi.moment(at), en.moment(at)) == ("01/06/2027 08:05", "2027-06-01 08:05")
    assert vi.outcome("pending: queued as inbox #12; the daemon has not applied it within 30 s") == \
        "đang chờ: đã xếp hàng với số #12; hệ thống chưa xử lý xong trong 30 giây"
    assert en.outcome("refused: whatever the engine says") == "refused: whatever the engine says"
    assert vi.outcome("refused: a reason nobody translated") == "bị từ chối: a reason nobody translated"


def test_the_shared_catalog_holds_the_cli_strings() -> None:
    """tests/test_web.py checks every extracted string is translated: the CLI's are among them."""
    files = {path for message in catalog.extract() for path, _line in message.locations}
    assert {"cli/main.py", "cli/instances.py", "cli/tables.py", "i18n/reasons.py", "server/web/instance.py"} <= files
    translated = {m.id: m.string for m in catalog.read("vi") if m.id}
    assert translated["%(n)s instance(s)"] == "%(n)s hồ sơ"


def test_the_administrators_account_and_token_commands_speak_vietnamese(policy: Path) -> None:
    """`user` and `token` say what they did in the CLI's language: the shipped config's `vi`."""
    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COOPFLOW_") and k not in LOCALE_VARIABLES}
        env["COLUMNS"] = "250"
        return subprocess.run([sys.executable, "-m", "engine", *args, "-c", str(policy)], capture_output=True, text=True,
                              encoding="utf-8", env=env, cwd=policy.parent, input=input, timeout=120)

    added = run("user", "add", "nguyen_van_a", "--password-stdin", input="mật khẩu đủ dài 2027\n")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "đã tạo tài khoản: nguyen_van_a (dic.focal_point)"
    listed = run("user", "list").stdout
    assert "đang hoạt động" in listed and "chưa có tài khoản" in listed and "người dùng" in listed
    issued = run("token", "issue", "nguyen_van_a", "--read-only")
    assert issued.returncode == 0, issued.stderr
    assert " (chỉ xem); mã hết hạn sau 90d. Mã chỉ hiện một lần này." in issued.stderr
    token_id = issued.stdout.strip().split("_")[1]
    assert run("token", "revoke", token_id).stdout.strip() == f"đã thu hồi: {token_id}"
    assert "đã thu hồi" in run("token", "list").stdout
