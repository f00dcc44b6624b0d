"""Metric conventions shared by the adapter and the gateway, so their latency histograms line up.

`LATENCY_BUCKETS_SECONDS`: bucket bounds of every request/call latency histogram. A call
through the gateway is measured by both components; identical bounds let a dashboard put the
adapter's and the gateway's quantiles side by side (and subtract them) without re-bucketing.
The low end resolves the ~1 ms hops of a healthy path; the high end the longest timeouts.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.metrics import MetricWrapperBase

LATENCY_BUCKETS_SECONDS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


class Series:
    """A labelled metric whose children are looked up in a dict, once per label set.

    prometheus_client's `labels()` validates, formats and takes a lock on every call: a few
    percent of a relayed call's CPU. Only for metrics whose series are never removed, and whose
    label values are bounded (the cache keeps every label set it has seen).
    """

    def __init__(self, metric: MetricWrapperBase) -> None:
        self.metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def labels(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.metric.labels(*values)
        return child
