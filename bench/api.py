"""HTTP API latency with 50 concurrent clients: fire, one instance's status, and /healthz as the floor.

A real `coopflow run` (daemon + API, SQLite by default; `--pg` for PostgreSQL) on a copy of the
shipped policy. CLIENTS threads, each with its own keep-alive httpx client and a token of a
dic.focal_point or dic.leader, each:

1. status phase: GET /api/v1/instances/{id} of its own instance STATUS times (and, interleaved,
   GET /healthz: the server's floor, no store, no login);
2. write phase: ROUNDS times start an information_exchange (POST /instances) and fire `send` on it
   (POST /instances/{id}/events), each under an Idempotency-Key; the daemon applies every event.

Reported: p50 / p99 / max latency per kind, and events/s through the API (writes applied per
second of the write phase's wall time). The clients run in this process: their own Python time
is inside the latencies (the CPU line shows how busy this process was).

    .venv/bin/python bench/api.py [--clients 50] [--rounds 4] [--status 10] [--pg]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import environment, median, percentile, pg_schema  # noqa: E402
from server import running  # noqa: E402

PEOPLE = ["nguyen_van_a", "tran_van_binh"]


def main() -> None:
    import httpx

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--status", type=int, default=10)
    parser.add_argument("--pg", action="store_true", help="PostgreSQL (COOPFLOW_BENCH_PG_URL) instead of SQLite")
    args = parser.parse_args()
    print(environment())
    with tempfile.TemporaryDirectory(prefix="bench_api_") as tmp, (pg_schema() if args.pg else nullcontext()) as pg:
        store_url = pg[0] if pg else None
        with running(Path(tmp) / "server", PEOPLE, command="run", store_url=store_url) as (url, _config, tokens):
            samples: dict[str, list[float]] = {"healthz": [], "status": [], "start": [], "fire": []}
            lock, errors, reconnects = threading.Lock(), [], []
            barrier = threading.Barrier(args.clients + 1, timeout=600)

            def timed(kind: str, call) -> httpx.Response:
                began = time.perf_counter()
                try:
                    response = call()
                except httpx.TransportError:  # a kept-alive connection the server closed meanwhile: once more
                    with lock:
                        reconnects.append(kind)
                    began = time.perf_counter()
                    response = call()
                elapsed = time.perf_counter() - began
                if response.status_code not in (200, 201):
                    errors.append(f"{kind}: {response.status_code} {response.text[:200]}")
                with lock:
                    samples[kind].append(elapsed)
                return response

            def client(i: int) -> None:
                token = tokens[PEOPLE[i % len(PEOPLE)]]
                with httpx.Client(base_url=url, timeout=120, headers={"Authorization": f"Bearer {token}"}) as http:
                    body = {"workflow": "information_exchange",
                            "values": {"requester": "dic", "recipient": "police", "subject": f"bench {i}"}}
                    own = http.post("/api/v1/instances", json=body, headers={"Idempotency-Key": f"own-{i}"}).json()["instance"]
                    barrier.wait()
                    for _ in range(args.status):
                        timed("status", lambda: http.get(f"/api/v1/instances/{own}"))
                        timed("healthz", lambda: http.get("/healthz"))
                    barrier.wait()
                    for r in range(args.rounds):
                        started = timed("start", lambda r=r: http.post("/api/v1/instances", json=body,
                                                                   headers={"Idempotency-Key": f"c{i}-r{r}"}))
                        ident = started.json().get("instance")
                        timed("fire", lambda ident=ident, r=r: http.post(f"/api/v1/instances/{ident}/events", headers={"Idempotency-Key": f"c{i}-r{r}-send"},
                                                        json={"trigger": "send", "values": {"dispatch_no": f"{i}-{r}"}}))

            threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
            for t in threads:
                t.start()
            cpu = time.process_time()
            barrier.wait()
            status_began = time.perf_counter()
            barrier.wait()
            writes_began = time.perf_counter()
            for t in threads:
                t.join()
            writes_wall = time.perf_counter() - writes_began
            cpu = time.process_time() - cpu
    print(f"\n{args.clients} concurrent clients, {'PostgreSQL' if args.pg else 'SQLite'}; "
          f"status phase {writes_began - status_began:.1f} s, write phase {writes_wall:.1f} s; "
          f"client process CPU {cpu:.1f} s")
    print("| request | n | p50 ms | p99 ms | max ms |\n| --- | --- | --- | --- | --- |")
    for kind, values in samples.items():
        ms = [v * 1000 for v in values]
        print(f"| {kind} | {len(ms)} | {median(ms):.0f} | {percentile(ms, 99):.0f} | {max(ms):.0f} |")
    events = len(samples["start"]) + len(samples["fire"])
    print(f"\nevents through the API: {events} applied in {writes_wall:.1f} s = {events / writes_wall:.1f} events/s")
    if errors:
        print(f"{len(errors)} unexpected answers, e.g. {errors[0]}")
    if reconnects:
        print(f"{len(reconnects)} request(s) sent again on a new connection (the server had closed an idle one)")


if __name__ == "__main__":
    main()
