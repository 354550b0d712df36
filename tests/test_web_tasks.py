""""Việc của tôi" (my tasks) read in pages from a real store (SQLite and PostgreSQL), on the shipped policy.

The pages (engine.store.worklist, made tiny here so that every page boundary is crossed) must give,
walked to the end, exactly the files a plain per-file reading of the definition gives: open, visible
to the person, and one of their roles named for a step from the state other than taking it back
("mine") or not ("waiting"), soonest deadline first, files without a deadline last, then by id.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

import pytest
from conftest import copy_shipped_policy

from engine.auth.people import Principal
from engine.execution.runtime import open_runtime
from engine.rules.actors import matches, parse_actor
from engine.server.web import tasks
from engine.service import Deployment
from engine.store import worklist

DIC = Principal("nguyen_van_a", "dic", ("dic.focal_point",), "test", "127.0.0.1")
POLICE = Principal("nguyen_thi_b", "police", ("police.focal_point",), "test", "127.0.0.1")
STAFF = Principal("bui_van_nam", "police", ("police.staff",), "test", "127.0.0.1")


@pytest.fixture
def deployment(tmp_path, store_url):
    config = copy_shipped_policy(tmp_path / "policy")
    text = config.read_text(encoding="utf-8")
    config.write_text(re.sub(r"(?m)^store:.*$", f"store: {store_url}", text), encoding="utf-8")
    open_runtime(config, create=True).store.dispose()
    with Deployment.open(config, log_to_files=False) as d:
        yield d


def request(d: Deployment, requester: str, recipient: str, subject: str, *steps: tuple[str, str, dict]) -> str:
    started = d.start("information_exchange", f"{requester}.focal_point",
                      {"requester": requester, "recipient": recipient, "subject": subject, "classification": "thuong"})
    assert started.applied, started.text
    for trigger, actor, values in steps:
        done = d.fire(started.instance, trigger, actor, values)
        assert done.applied, done.text
    return started.instance


def fill(d: Deployment) -> dict[str, list[str]]:
    """Files in every situation the lists tell apart (13 open, 1 closed), by situation."""
    send = ("send", "dic.focal_point", {"dispatch_no": "1/STTTT"})
    made: dict[str, list[str]] = {
        "sent": [request(d, "dic", "police", f"đã gửi {i}", send) for i in range(5)],  # police owes acknowledge
        "drafted": [request(d, "dic", "police", f"dự thảo {i}") for i in range(3)],  # dic owes send; no deadline
        "answering": [request(d, "dic", "police", "đang xử lý", send, ("acknowledge", "police.staff", {}))],
        "closed": [request(d, "dic", "police", "rút lại", ("withdraw", "dic.focal_point", {}))],
        "asked_by_police": [request(d, "police", "dic", f"công an hỏi {i}", ("send", "police.focal_point", {"dispatch_no": "2/CAT"}))
                            for i in range(3)],
    }
    meeting = d.start("emergency_review", "dic.leader:tran_van_binh", {"issue": "Tin giả"})  # seen by every party
    assert meeting.applied, meeting.text
    return made


def expected(d: Deployment, p: Principal) -> tuple[list[str], list[str]]:
    """(mine, waiting) ids read file by file from the definition, in page order."""
    actors = [parse_actor(r, d.policy.config) for r in p.roles]
    visibility = d.visibility(p)
    mine, waiting = [], []
    far = datetime.max.replace(tzinfo=datetime.now().astimezone().tzinfo)
    rows = sorted((r for r in d.instances() if not r["final"] and visibility.allows(r)),
                  key=lambda r: (r["deadline"] is None, r["deadline"]["due_at"] if r["deadline"] else far, r["id"]))
    for row in rows:
        spec = d.policy.workflows[row["workflow"]]
        named = any(matches(a, pattern, row["fields"]) for t in spec.transitions if not t.optional
                    and spec.leaves(t, row["state"]) for pattern in t.by for a in actors)
        (mine if named else waiting).append(row["id"])
    return mine, waiting


def walk(d: Deployment, p: Principal, which: str) -> list[str]:
    """Every id of one list, following its next-page cursors to the end."""
    seen, after = [], None
    for _ in range(100):
        page = tasks._tasks(d, p, after if which == "mine" else None, after if which == "waiting" else None)
        seen += [item["id"] for item in page[which]]
        after = page[f"{which}_next"]
        if after is None:
            return seen
    raise AssertionError("the pages never end")


@pytest.mark.parametrize("window, budget, page", [(2, 4, 3), (500, 2000, 50)])
def test_pages_walked_to_the_end_are_the_definition(deployment, monkeypatch, window, budget, page):
    made = fill(deployment)
    monkeypatch.setattr(worklist, "WINDOW", window)
    monkeypatch.setattr(worklist, "BUDGET", budget)
    monkeypatch.setattr(tasks, "PAGE", page)
    for p in (DIC, POLICE, STAFF):
        mine, waiting = expected(deployment, p)
        assert walk(deployment, p, "mine") == mine, p.person
        assert walk(deployment, p, "waiting") == waiting, p.person
    # the definition, as people see the files the fill made
    police_mine, police_waiting = expected(deployment, POLICE)
    dic_mine, dic_waiting = expected(deployment, DIC)
    staff_mine, _ = expected(deployment, STAFF)
    assert set(made["sent"] + made["answering"]) <= set(police_mine)
    assert set(made["sent"]) <= set(staff_mine) and not set(made["answering"]) & set(staff_mine)  # staff may not answer
    assert set(made["drafted"] + made["asked_by_police"]) <= set(police_waiting)
    assert set(made["drafted"] + made["asked_by_police"]) <= set(dic_mine)
    assert set(made["sent"] + made["answering"]) <= set(dic_waiting)  # dic may only take them back
    assert not set(made["closed"]) & set(police_mine + police_waiting + dic_mine + dic_waiting)
    assert police_mine[-1] not in made["drafted"] and dic_mine[-1] in made["drafted"]  # no deadline: last
    # the API's and the CLI's tasks: of the same files, those with a step the person may take now, in the same order
    for p, mine in ((POLICE, police_mine), (DIC, dic_mine)):
        owed = [t["instance"] for t in deployment.tasks(p)]
        assert owed and set(owed) <= set(mine) and owed == [i for i in mine if i in owed], p.person
    assert set(made["sent"] + made["answering"]) <= {t["instance"] for t in deployment.tasks(POLICE)}


def test_a_bad_cursor_starts_from_the_first_page(deployment):
    fill(deployment)
    first = tasks._tasks(deployment, POLICE, None, None)
    assert tasks._tasks(deployment, POLICE, "not-a-cursor", "%%%")["mine"] == first["mine"]
    with pytest.raises(worklist.BadCursor):
        worklist.check_cursor("bm90IGpzb24")


def test_the_calendar_keeps_what_the_person_may_see(deployment):
    """upcoming_for filters in SQL: each person's items are the administrator's that they may see, in
    the same order, `total` counts them, and a page is cut from them."""
    fill(deployment)
    ubnd = Principal("mai_thi_ngoc", "ubnd", ("ubnd.focal_point",), "test", "127.0.0.1")
    admin = Principal("admin", None, (), "test", "127.0.0.1", is_admin=True)
    every = deployment.upcoming_for(admin, 3660)["items"]
    rows = {r["id"]: r for r in deployment.instances()}
    for p in (DIC, POLICE, ubnd):
        visibility = deployment.visibility(p)
        wanted = [i for i in every if not i.get("instance") or visibility.allows(rows[i["instance"]])]
        got = deployment.upcoming_for(p, 3660)
        assert (got["items"], got["total"]) == (wanted, len(wanted)), p.person
        assert deployment.upcoming_for(p, 3660, limit=2, offset=1)["items"] == wanted[1:3], p.person
    # the People's Committee takes part in the emergency meeting only
    assert {i["instance"].split("-")[0] for i in deployment.upcoming_for(ubnd, 3660)["items"] if i.get("instance")} \
        == {"emergency_review"}


def pages(d: Deployment, person: str, *paths: str | Callable[[str], str]) -> list[str]:
    """The console's pages as `person` gets them through the app (a path may be made from the page before)."""
    import asyncio

    import httpx

    from engine.auth import accounts, tokens
    from engine.server.app import create_app

    accounts.add_user(d.runtime.store, d.policy.config, person, "mật khẩu đủ dài 2027")
    token = tokens.issue(d.runtime.store, d.policy.config, person, None)[1]

    async def get_all() -> list[str]:
        transport = httpx.ASGITransport(app=create_app(d))
        async with httpx.AsyncClient(transport=transport, base_url="http://coopflow.test",
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            texts: list[str] = []
            for path in paths:
                answer = await client.get(path if isinstance(path, str) else path(texts[-1]))
                assert answer.status_code == 200, answer.text
                texts.append(answer.text)
            return texts

    return asyncio.run(get_all())


def test_the_calendar_page_lists_only_what_the_person_may_see(deployment):
    """Through the app: the People's Committee's calendar shows the meetings' files, none of the requests."""
    fill(deployment)
    admin = Principal("admin", None, (), "test", "127.0.0.1", is_admin=True)
    every = {i["instance"] for i in deployment.upcoming_for(admin, 3660)["items"] if i.get("instance")}
    (page,) = pages(deployment, "mai_thi_ngoc", "/calendar?days=3660")
    shown = set(re.findall(r'href="/i/([\w-]+)"', page))
    assert any(i.startswith("information_exchange") for i in every)
    assert shown and all(i.startswith("emergency_review") for i in shown), shown
    assert shown == {i for i in every if i.startswith("emergency_review")}


def test_the_page_links_walk_the_lists(deployment, monkeypatch):
    """Through the app: the next-page links carry both lists' cursors, the first-page link drops one."""
    import html

    fill(deployment)
    monkeypatch.setattr(tasks, "PAGE", 2)
    mine, waiting = expected(deployment, POLICE)

    def section(text: str, name: str) -> str:
        return text.split(f'aria-labelledby="{name}"', 1)[1].split("</section>", 1)[0]

    def listed(text: str, name: str) -> list[str]:
        return re.findall(r"<small>([\w-]+)</small>", section(text, name))

    def next_link(text: str, name: str) -> str:
        return html.unescape(re.search(r'href="([^"]+)" rel="next"', section(text, name)).group(1))

    first, second, both = pages(deployment, POLICE.person, "/", lambda page: next_link(page, "owed"),
                                lambda page: next_link(page, "others"))  # keeps mine's page, turns waiting's
    assert listed(first, "owed") == mine[:2] and listed(first, "others") == waiting[:2]
    assert listed(second, "owed") == mine[2:4] and listed(second, "others") == waiting[:2]
    assert listed(both, "owed") == mine[2:4] and listed(both, "others") == waiting[2:4]
    assert "Trang đầu" in both and "Trang đầu" not in first
