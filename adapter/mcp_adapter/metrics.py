"""Prometheus metrics of the adapter (`GET /metrics`), all named `mcp_adapter_*`.

A private registry keeps the exposition to the adapter's own series, so
several adapters in one test process (or a gateway importing this package)
never collide on the default registry.

Label cardinality is bounded: the `name` label of the per-call series only ever
holds names of the merged catalog (unknown names fail before they are counted),
and at most `MAX_NAMES_PER_SOURCE` distinct names per source and operation get
their own series; calls of any further name count under `name="other"`. So a
source whose catalog keeps changing cannot grow the exposition (or memory:
prometheus keeps every label child it ever created) without bound.

Counters are declared with their `_total` suffix (prometheus_client would append it
anyway), so the names in the code are the names in the exposition and in the chart's
alerts and dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcp_common.metrics import LATENCY_BUCKETS_SECONDS, Series
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(
            "mcp_adapter_calls_total",
            "Upstream operations served, by source, operation and item",
            ["source", "op", "name"],
            registry=registry,
        )
        self.errors = Counter(
            "mcp_adapter_errors_total",
            "Upstream operations that failed (protocol error or isError result)",
            ["source", "op", "name"],
            registry=registry,
        )
        self.latency = Histogram(
            "mcp_adapter_call_duration_seconds",
            "Upstream operation latency",
            ["source", "op", "name"],
            registry=registry,
            buckets=LATENCY_BUCKETS_SECONDS,
        )
        self.child_restarts = Counter(
            "mcp_adapter_child_restarts_total",
            "Restarts of stdio child processes and reconnects",
            ["source"],
            registry=registry,
        )
        self.passthrough = Series(  # counted on every relayed call: children cached
            Counter(
                "mcp_adapter_passthrough_total",
                "2026-07-28 tools/call requests relayed to the source without decoding (see passthrough.py)",
                ["source"],
                registry=registry,
            )
        )
        self.source_up = Gauge("mcp_adapter_source_up", "1 when the source is connected", ["source"], registry=registry)
        self.sessions = Gauge(
            "mcp_adapter_upstream_sessions", "Open upstream sessions per source", ["source"], registry=registry
        )
        # Against mcp_adapter_calls_total: connection churn from the gateway (or any client) to this adapter.
        self.connections = Counter(
            "mcp_adapter_http_connections_total",
            "TCP connections accepted on the adapter's HTTP port",
            registry=registry,
        )


METRICS = _Metrics(REGISTRY)


@dataclass(frozen=True)
class CallSeries:
    """The three series one (source, op, name) updates per call, resolved once: `labels()` is not free."""

    calls: Any
    errors: Any
    latency: Any


MAX_NAMES_PER_SOURCE = 1000
OTHER = "other"
"""The `name` label of calls beyond `MAX_NAMES_PER_SOURCE` distinct names of one source and operation."""

_SERIES: dict[tuple[str, str, str], CallSeries] = {}
_NAMES: dict[tuple[str, str], int] = {}  # distinct names with their own series, per (source, op)


def call_series(source: str, op: str, name: str) -> CallSeries:
    """The series of one call; resolved once per label set (at most `MAX_NAMES_PER_SOURCE` + 1 per source and op)."""
    series = _SERIES.get((source, op, name))
    if series is not None:
        return series
    if _NAMES.get((source, op), 0) >= MAX_NAMES_PER_SOURCE:
        name = OTHER
        if (series := _SERIES.get((source, op, name))) is not None:
            return series
    else:
        _NAMES[(source, op)] = _NAMES.get((source, op), 0) + 1
    key = (source, op, name)
    series = _SERIES[key] = CallSeries(
        METRICS.calls.labels(*key), METRICS.errors.labels(*key), METRICS.latency.labels(*key)
    )
    return series


def exposition() -> bytes:
    return generate_latest(REGISTRY)
