"""Benchmark: server time per page of the web console with 100,000 instances in the store, beside raw SQL.

The store is bench/reads.py's `live` store: 100,000 open `information_exchange` requests from
dic to police (half `sent`, half `in_progress`, each with its armed deadline) and 10 history rows
each (1,000,000 history rows), written with the database's own bulk path into a store
`coopflow init` created. Two people get an account and a token: nguyen_thi_b (police focal point:
owes a step on every request) and nguyen_van_a (dic focal point: waits on police for all of them).

The pages are asked of the FastAPI app in this process (Starlette's TestClient, a bearer token):
the time is the server's (routing, reads, rendering) without a network. Each page is asked
`--repeat` times (the first is also timed: a cold cache); reported: median and max, and the bytes
of HTML. Beside it, in the same run, the raw SQL reading the same rows with the bare driver.

Aims (issue #12): "Việc của tôi" (my tasks) and an instance page <= 200 ms.

    .venv/bin/python bench/web.py [--count 100000] [--repeat 5] [--pg] [--profile]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import environment, median, profile, quiet_logs, table  # noqa: E402
from reads import _sqlite_value, built_store  # noqa: E402

AIM_S = 0.200
PASSWORD = "mật khẩu đủ dài 2027"
PEOPLE = {"police": "nguyen_thi_b", "dic": "nguyen_van_a"}
PAGE = 50  # rows of one page of my tasks


def pages(count: int) -> list[tuple[str, str, str, bool]]:
    """(label, person, path, aimed at 200 ms) of each page measured."""
    one = f"/i/information_exchange-b{count // 2 + 1:07d}"  # in_progress: police may answer, mark complex, refuse
    return [("my tasks (police: owes on every request)", "police", "/", True),
            ("my tasks (dic: waits on every request)", "dic", "/", True),
            ("instance page (police)", "police", one, True),
            ("instance page (dic)", "dic", one, True),
            ("overview", "police", "/overview", False),
            ("calendar (90 days)", "police", "/calendar", False)]


def raw_queries(count: int, now: datetime, mark: str) -> list[tuple[str, str, tuple]]:
    """(label, SQL, parameters) of the raw reads of the same rows; `mark` is the driver's placeholder."""
    one = f"information_exchange-b{count // 2 + 1:07d}"
    armed = "LEFT JOIN timers t ON t.instance = i.id AND t.status = 'armed'"
    return [
        ("every open instance with its armed deadline (all rows)",
         f"SELECT i.id, i.workflow, i.version, i.state, i.fields, t.due_at FROM instances i {armed} WHERE i.final = 0", ()),
        (f"first {PAGE} open instances by deadline",
         f"SELECT i.id, i.workflow, i.version, i.state, i.fields, t.due_at FROM instances i {armed} WHERE i.final = 0 "
         f"ORDER BY t.due_at, i.id LIMIT {PAGE}", ()),
        ("one instance: row, armed timer, consents, history",
         f"SELECT * FROM instances i {armed} WHERE i.id = {mark}; "
         f"SELECT * FROM consents WHERE instance = {mark}; SELECT * FROM history WHERE instance = {mark} ORDER BY seq",
         (one, one, one)),
        ("GROUP BY workflow, state (open)", "SELECT workflow, state, count(*) FROM instances WHERE final = 0 GROUP BY 1, 2", ()),
        ("deadlines due in 90 days, first 500, joined to instances",
         f"SELECT t.instance, t.due_at, i.version, i.fields FROM timers t JOIN instances i ON i.id = t.instance "
         f"WHERE t.status = 'armed' AND t.due_at <= {mark} ORDER BY t.due_at, t.instance LIMIT 500", (now + timedelta(days=90),)),
    ]


def timed_raw(execute, queries) -> list[tuple[str, float]]:
    """Median of three runs of each query (each statement of a ';'-joined query in turn)."""
    out = []
    for label, sql, params in queries:
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            left = list(params)
            for statement in sql.split("; "):
                n = statement.count("?") + statement.count("%s")
                execute(statement, tuple(left[:n]))
                left = left[n:]
            runs.append(time.perf_counter() - start)
        out.append((label, median(runs)))
    return out


def raw_sqlite(path: Path, queries) -> list[tuple[str, float]]:
    conn = sqlite3.connect(path)
    try:
        return timed_raw(lambda sql, params: conn.execute(sql, [_sqlite_value(p) for p in params]).fetchall(), queries)
    finally:
        conn.close()


def raw_pg(conninfo: str, schema: str, queries) -> list[tuple[str, float]]:
    import psycopg

    with psycopg.connect(conninfo) as conn:
        conn.execute(f"SET search_path TO {schema}")
        return timed_raw(lambda sql, params: conn.execute(sql, params).fetchall(), queries)


def accounts(config: Path) -> dict[str, str]:
    """An account and a token for each person of PEOPLE: party -> token."""
    from engine.auth import accounts as people
    from engine.auth import tokens
    from engine.service import Deployment

    out = {}
    with Deployment.open(config, log_to_files=False) as d:
        for party, person in PEOPLE.items():
            people.add_user(d.runtime.store, d.policy.config, person, PASSWORD)
            out[party] = tokens.issue(d.runtime.store, d.policy.config, person, None)[1]
    return out


def in_this_thread(app, path: str, headers: dict[str, str]):
    """Call the page's route function in this thread, as the server's thread pool does (cProfile
    sees only its own thread; TestClient runs the app in another): the page's work, no ASGI."""
    from starlette.requests import Request

    from engine.server.web import instance, oversight, tasks

    scope = {"type": "http", "method": "GET", "path": path, "query_string": b"", "app": app, "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()], "client": ("127.0.0.1", 1),
             "server": ("testserver", 80), "scheme": "http", "state": {}}
    request = Request(scope)
    if path.startswith("/i/"):
        return instance.instance_view(path[3:], request)
    page = {"/": tasks.my_tasks, "/overview": oversight.overview, "/calendar": oversight.calendar}[path]
    return page(request)


def measure(config: Path, count: int, repeat: int, want_profile: bool) -> list[list]:
    from fastapi.testclient import TestClient

    from engine.server.app import create_app
    from engine.service import Deployment

    tokens = accounts(config)
    results = []
    with Deployment.open(config, log_to_files=False) as d, TestClient(create_app(d)) as client:
        for label, party, path, aimed in pages(count):
            headers = {"Authorization": f"Bearer {tokens[party]}"}

            def get(path=path, headers=headers):
                response = client.get(path, headers=headers)
                if response.status_code != 200:
                    raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:300]}")
                return response

            runs, size = [], 0
            for _ in range(repeat):
                start = time.perf_counter()
                size = len(get().content)
                runs.append(time.perf_counter() - start)
            missed = aimed and median(runs) > AIM_S
            verdict = " **missed**" if missed else (" met" if aimed else "")
            results.append([f"`GET {path}` {label}{verdict}", f"{1000 * runs[0]:.0f}", f"{1000 * median(runs):.0f}",
                            f"{1000 * max(runs):.0f}", f"{size:,}"])
            print(f"    {label}: first {1000 * runs[0]:.0f} ms, median {1000 * median(runs):.0f} ms, {size:,} bytes", flush=True)
            if missed or want_profile:
                _, report = profile(in_this_thread, client.app, path, headers, top=30)
                print(report, flush=True)
    return results


def scenario(kind: str, count: int, repeat: int, want_profile: bool) -> list[list]:
    with tempfile.TemporaryDirectory(prefix="bench_web_") as tmp, built_store(Path(tmp), kind, count, True, timedelta(days=30)) as built:
        pg = built.pg
        print(f"  {kind}: {count:,} instances built in {built.seconds:.0f} s", flush=True)
        out = [[kind, *row] for row in measure(built.config, count, repeat, want_profile)]
        queries = raw_queries(count, built.now, "%s" if pg else "?")
        raw = raw_pg(pg[1], pg[2], queries) if pg else raw_sqlite(Path(tmp) / "store.db", queries)
        out += [[kind, f"raw SQL: {label}", "", f"{1000 * seconds:.0f}", "", ""] for label, seconds in raw]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100_000, help="open instances (10 history rows each)")
    parser.add_argument("--repeat", type=int, default=5, help="times each page is asked")
    parser.add_argument("--pg", action="store_true", help="also on PostgreSQL (COOPFLOW_BENCH_PG_URL)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile report of every page (else only of a missed aim)")
    args = parser.parse_args()
    print(environment(), flush=True)
    quiet_logs()
    out = scenario("sqlite", args.count, args.repeat, args.profile)
    if args.pg:
        out += scenario("postgresql", args.count, args.repeat, args.profile)
    print(table(["database", "page", "first ms", "median ms", "max ms", "HTML bytes"], out))


if __name__ == "__main__":
    main()
