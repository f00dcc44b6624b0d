"""Prometheus metrics of the adapter (`GET /metrics`), all named `mcp_adapter_*`.

A private registry keeps the exposition to the adapter's own series, so
several adapters in one test process (or a gateway importing this package)
never collide on the default registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(
            "mcp_adapter_calls",
            "Upstream operations served, by source, operation and item",
            ["source", "op", "name"],
            registry=registry,
        )
        self.errors = Counter(
            "mcp_adapter_errors",
            "Upstream operations that failed (protocol error or isError result)",
            ["source", "op", "name"],
            registry=registry,
        )
        self.latency = Histogram(
            "mcp_adapter_call_duration_seconds",
            "Upstream operation latency",
            ["source", "op", "name"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.child_restarts = Counter(
            "mcp_adapter_child_restarts",
            "Restarts of stdio child processes and reconnects",
            ["source"],
            registry=registry,
        )
        self.source_up = Gauge("mcp_adapter_source_up", "1 when the source is connected", ["source"], registry=registry)
        self.sessions = Gauge(
            "mcp_adapter_upstream_sessions", "Open upstream sessions per source", ["source"], registry=registry
        )


METRICS = _Metrics(REGISTRY)


@dataclass(frozen=True)
class CallSeries:
    """The three series one (source, op, name) updates per call, resolved once: `labels()` is not free."""

    calls: Any
    errors: Any
    latency: Any


_SERIES: dict[tuple[str, str, str], CallSeries] = {}
_MAX_SERIES = 100_000  # a runaway number of names must not grow memory without bound


def call_series(source: str, op: str, name: str) -> CallSeries:
    key = (source, op, name)
    series = _SERIES.get(key)
    if series is None:
        if len(_SERIES) >= _MAX_SERIES:
            _SERIES.clear()
        series = _SERIES[key] = CallSeries(
            METRICS.calls.labels(*key), METRICS.errors.labels(*key), METRICS.latency.labels(*key)
        )
    return series


def exposition() -> bytes:
    return generate_latest(REGISTRY)
