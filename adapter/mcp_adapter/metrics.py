"""Prometheus metrics of the adapter (`GET /metrics`), all named `mcp_adapter_*`.

A private registry keeps the exposition to the adapter's own series, so
several adapters in one test process (or a gateway importing this package)
never collide on the default registry.
"""

from __future__ import annotations

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


def exposition() -> bytes:
    return generate_latest(REGISTRY)
