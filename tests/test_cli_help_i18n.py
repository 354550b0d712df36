"""The CLI's --help, click's own words and the password prompts in the reader's language.

The help texts stay English in the source (the msgids); engine/cli/clicktext.py translates them and
click's words from the shared catalog when they are shown. Here: every help text of the whole command
tree (every sub-command, the lazily imported ones too) and every word of click's is in the catalog
with a Vietnamese translation, and the real `coopflow` in a subprocess says them in Vietnamese, or
in English under LC_MESSAGES=en_US.UTF-8 (tests/conftest.py sets that for the rest of the suite).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator

import click
import pytest

from engine.cli import clicktext
from engine.cli.main import cli
from engine.i18n import catalog

LOCALE_VARIABLES = ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE")


def every_command() -> Iterator[tuple[str, click.Command]]:
    """The whole command tree by path ("coopflow", "coopflow user add" …), lazy sub-commands imported."""
    def walk(path: str, command: click.Command, ctx: click.Context) -> Iterator[tuple[str, click.Command]]:
        yield path, command
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None, f"{path} {name}"
                yield from walk(f"{path} {name}", sub, click.Context(sub, parent=ctx, info_name=name))

    yield from walk("coopflow", cli, click.Context(cli, info_name="coopflow"))


def vietnamese() -> dict[str, str]:
    return {(m.id if isinstance(m.id, str) else m.id[0]): (m.string if isinstance(m.string, str) else m.string[0])
            for m in catalog.read("vi") if m.id}


def test_every_help_text_of_the_command_tree_is_extracted_and_translated() -> None:
    translated = vietnamese()
    extracted = {m.id for m in catalog.extract() if m.id}
    paths, texts = set(), 0
    for path, command in every_command():
        paths.add(path)
        for obj in (command, *command.params):
            for field, text in clicktext.english(obj).items():
                texts += 1
                assert text in extracted, f"{path}: the {field} {text!r} is not extracted"
                assert translated.get(text), f"{path}: no Vietnamese for the {field} {text!r}"
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert clicktext.english(param).get("help"), f"{path}: {param.opts} has no help"
        assert clicktext.english(command).get("help"), f"{path} has no help"
    # the lazily imported sub-commands and the sub-groups' own commands are in the walk
    assert {"coopflow start", "coopflow user add", "coopflow token issue", "coopflow audit verify",
            "coopflow inbox cancel", "coopflow deliveries retry"} <= paths
    assert texts > 100


def test_every_word_of_click_is_translated_with_the_same_placeholders() -> None:
    translated = vietnamese()
    words = [m for m in catalog.extract() if m.id and any(path.startswith("click/") for path, _ in m.locations)]
    assert {"Usage:", "Options", "Commands", "Show this message and exit.", "default: {default}",
            "No such option {name!r}.", "Missing argument", "Error: {message}", "required"} <= {
        m.id if isinstance(m.id, str) else m.id[0] for m in words}
    for message in words:
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        text = translated.get(ids[0])
        assert text, f"no Vietnamese for click's {ids[0]!r}"
        fields = set(re.findall(r"\{\w+(?:![rs])?\}", text))
        assert fields <= set().union(*(re.findall(r"\{\w+(?:![rs])?\}", i) for i in ids)), ids[0]


def folded(text: str) -> str:
    """`text` with its line breaks and runs of spaces as single spaces (click wraps at 80 columns)."""
    return " ".join(text.split())


def coopflow(*args: str, stdin: str | None = None, **locale: str) -> subprocess.CompletedProcess:
    """`coopflow ARGS` with exactly the locale variables given, without a controlling terminal (a
    hidden prompt then reads standard input)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COOPFLOW_") and k not in LOCALE_VARIABLES}
    env.update(locale)
    return subprocess.run([sys.executable, "-m", "engine", *args], input=stdin, capture_output=True, text=True,
                          encoding="utf-8", env=env, timeout=120, start_new_session=True)


@pytest.mark.parametrize("locale", [{"LC_MESSAGES": "vi_VN.UTF-8"}, {}], ids=["vi", "no-locale"])
def test_the_help_speaks_vietnamese(locale: dict[str, str]) -> None:
    top = coopflow("--help", **locale)
    assert top.returncode == 0, top.stderr
    assert top.stdout.startswith("Cách dùng: coopflow [TÙY-CHỌN] LỆNH [THAM-SỐ]...\n")
    for line in ("Tùy chọn:", "Lệnh:", "Hiện hướng dẫn này rồi thoát.", "Hiện phiên bản rồi thoát.",
                 "coopflow: vận hành quy chế phối hợp liên ngành",
                 "Chạy trên cơ sở dữ liệu của máy này kể cả khi đã đăng nhập vào máy chủ.",
                 "start Tạo hồ sơ mới theo quy trình WORKFLOW;"):  # the list shortens each command's help
        assert line in folded(top.stdout), line
    assert "Usage" not in top.stdout and "Show this message" not in top.stdout

    start = coopflow("start", "--help", **locale).stdout
    assert start.startswith("Cách dùng: coopflow start [TÙY-CHỌN] WORKFLOW\n")
    assert "Chế độ cục bộ: thời gian chờ hệ thống đang chạy xử lý sự kiện. [mặc định: 30.0]" in folded(start)
    assert "Tạo hồ sơ mới theo quy trình WORKFLOW; in mã hồ sơ, sau đó là kết quả." in folded(start)
    assert "Khóa chống trùng:" in start and "cũng có thể đặt trước tên lệnh." in folded(start)

    user = coopflow("user", "--help", **locale).stdout
    assert "Tài khoản của những người có tên trong config.yaml (mật khẩu được băm bằng argon2id)." in folded(user)
    assert re.search(r"^  passwd +Đặt mật khẩu mới cho PERSON\.$", user, re.M), user
    assert "Lệnh:" in user


def test_the_help_in_english_under_an_english_locale() -> None:
    top = coopflow("--help", LC_MESSAGES="en_US.UTF-8").stdout
    assert top.startswith("Usage: coopflow [OPTIONS] COMMAND [ARGS]...\n")
    assert "coopflow: run an inter-agency cooperation agreement as durable YAML state machines." in folded(top)
    assert "Options:" in top and "Commands:" in top and "Show this message and exit." in top
    start = coopflow("start", "--help", LC_MESSAGES="en_US.UTF-8").stdout
    assert "Start a new instance of WORKFLOW; prints its id, then the outcome." in folded(start)
    assert "how long to wait for a running daemon to apply the event. [default: 30.0]" in folded(start)
    user = coopflow("user", "--help", LC_MESSAGES="en_US.UTF-8").stdout
    assert re.search(r"^  passwd +Set a new password for PERSON\.$", user, re.M), user


def test_click_s_errors_in_vietnamese() -> None:
    missing = coopflow("fire", "some-instance", LC_MESSAGES="vi_VN.UTF-8")
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == ["Cách dùng: coopflow fire [TÙY-CHỌN] INSTANCE TRIGGER",
                                           "Xem hướng dẫn: 'coopflow fire --help'.", "",
                                           "Lỗi: Thiếu tham số 'TRIGGER'."]
    typo = coopflow("status", "--hlp", LC_MESSAGES="vi_VN.UTF-8")
    assert "Lỗi: Không có tùy chọn '--hlp'. Có phải ý bạn là '--help'?" in typo.stderr, typo.stderr
    english = coopflow("status", "--hlp", LC_MESSAGES="en_US.UTF-8")
    assert "Error: No such option '--hlp'. Did you mean '--help'?" in english.stderr, english.stderr


def test_the_password_prompt_in_vietnamese() -> None:
    """`coopflow login` asks for the password before it talks to the server (none listens here)."""
    vi = coopflow("login", "--server", "http://127.0.0.1:9", "--user", "nguyen_van_a", stdin="secret\n",
                  LC_MESSAGES="vi_VN.UTF-8")
    assert "Mật khẩu: " in vi.stdout + vi.stderr, vi.stdout + vi.stderr
    en = coopflow("login", "--server", "http://127.0.0.1:9", "--user", "nguyen_van_a", stdin="secret\n",
                  LC_MESSAGES="en_US.UTF-8")
    assert "Password: " in en.stdout + en.stderr, en.stdout + en.stderr
