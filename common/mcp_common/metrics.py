"""Metric conventions shared by the adapter and the gateway, so their latency histograms line up.

`LATENCY_BUCKETS_SECONDS`: bucket bounds of every request/call latency histogram. A call
through the gateway is measured by both components; identical bounds let a dashboard put the
adapter's and the gateway's quantiles side by side (and subtract them) without re-bucketing.
The low end resolves the ~1 ms hops of a healthy path; the high end the longest timeouts.
"""

from __future__ import annotations

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
