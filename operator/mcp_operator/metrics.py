"""Prometheus metrics of the operator (`GET /metrics` on the health port), named `mcp_operator_*`.

Labels are bounded: `controller` is one of a fixed set of words (the loops below), never an
object's name, so a cluster with many upstreams does not grow the exposition.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

# controller: routing (renders the routing ConfigMap) | upstream (per-upstream workloads and probes)
RECONCILES = Counter(
    "mcp_operator_reconciles_total", "Reconcile passes run, by controller", ["controller"], registry=REGISTRY
)
RECONCILE_ERRORS = Counter(
    "mcp_operator_reconcile_errors_total",
    "Reconcile passes that failed, by controller",
    ["controller"],
    registry=REGISTRY,
)
# Alerts compare it with time(): the publisher renders at least every resync interval, so an old
# value means the gateways are serving a stale routing config.
ROUTING_PUBLISHED = Gauge(
    "mcp_operator_routing_last_success_timestamp_seconds",
    "Unix time of the last successful render of the routing ConfigMap",
    registry=REGISTRY,
)

for _controller in ("routing", "upstream"):  # export zeros from the start: rate() needs a first sample
    RECONCILES.labels(_controller)
    RECONCILE_ERRORS.labels(_controller)


def reconciled(controller: str, *, ok: bool) -> None:
    RECONCILES.labels(controller).inc()
    if not ok:
        RECONCILE_ERRORS.labels(controller).inc()
    elif controller == "routing":
        ROUTING_PUBLISHED.set(time.time())


def exposition() -> bytes:
    return generate_latest(REGISTRY)
