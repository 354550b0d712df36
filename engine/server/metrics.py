"""Prometheus metrics (prometheus-client), read from the store at each scrape.

* `coopflow_events_total{workflow,status}` — inbox rows by workflow and status (applied, refused, pending);
* `coopflow_inbox_depth` — events waiting to be applied;
* `coopflow_timer_lag_seconds` — how far past due the oldest armed deadline is (0 when none is);
* `coopflow_deliveries_failed_total` — notifications given up on (dead).

Every process serving /metrics reports the same figures: they come from the shared store.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from engine import clock
from engine.store import inbox, reads

CONTENT_TYPE = CONTENT_TYPE_LATEST


def render(deployment) -> bytes:
    registry = CollectorRegistry()
    events = Gauge("coopflow_events_total", "Events in the inbox by workflow and outcome", ["workflow", "status"],
                   registry=registry)
    depth = Gauge("coopflow_inbox_depth", "Events waiting to be applied", registry=registry)
    lag = Gauge("coopflow_timer_lag_seconds", "How far past due the oldest armed deadline is", registry=registry)
    store = deployment.runtime.store
    with store.reading() as conn:
        pending = 0
        for workflow, status, count in reads.inbox_counts(conn):
            events.labels(workflow, status).set(count)
            pending += count if status == inbox.PENDING else 0
        depth.set(pending)
        oldest = reads.oldest_due_timer(conn)
        lag.set(max(0.0, (clock.now() - oldest).total_seconds()) if oldest else 0.0)
        from engine.store.deliveries import dead_count  # the table exists in every store since schema 3

        Gauge("coopflow_deliveries_failed_total", "Notifications given up on (dead letters)",
              registry=registry).set(dead_count(conn))
    return generate_latest(registry)
