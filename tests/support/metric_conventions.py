"""Prometheus naming and labelling conventions, checked on a real /metrics exposition.

The rules (https://prometheus.io/docs/practices/naming/ and .../instrumentation/):
- one prefix per component (`mcp_gateway_`, `mcp_adapter_`, `mcp_operator_`), snake_case;
- counters end in `_total`; nothing else does;
- histograms carry a base unit (`_seconds`, `_bytes`); no non-base units anywhere
  (milliseconds, minutes, kilobytes, ...);
- `_info` gauges are 1;
- label names come from a fixed vocabulary of bounded dimensions: no per-key, per-user,
  per-session or per-request label (those grow without bound and leak identities);
- every family has help text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

PREFIXES = ("mcp_gateway_", "mcp_adapter_", "mcp_operator_")
NAME = re.compile(r"^[a-z][a-z0-9_]*[a-z0-9]$")
NON_BASE_UNITS = re.compile(
    r"_(milliseconds|microseconds|nanoseconds|ms|us|ns|minutes|hours|days|kilobytes|megabytes|kb|mb|percent)(_|$)"
)
BASE_UNITS = ("_seconds", "_bytes")
# Bounded dimensions: config objects (tenant, profile, upstream, source, tool names capped per
# profile, policy rule names of a profile), fixed enums (method, status, outcome, kind, reason,
# state, ...) and histogram buckets.
ALLOWED_LABELS = frozenset(
    {
        "tenant",
        "profile",
        "upstream",
        "source",
        "tool",
        "name",
        "rule",
        "method",
        "status",
        "outcome",
        "kind",
        "reason",
        "meta",
        "op",
        "state",
        "to",
        "period",
        "controller",
        "digest",
        "le",
    }
)


@dataclass(frozen=True)
class Family:
    name: str
    type: str
    labels: frozenset[str]
    series: int


def families(text: str) -> list[Family]:
    out = []
    for family in text_string_to_metric_families(text):
        labels = frozenset(k for s in family.samples for k in s.labels)
        series = len({tuple(sorted((k, v) for k, v in s.labels.items() if k != "le")) for s in family.samples})
        out.append(Family(family.name, family.type, labels, series))
    return out


def problems(text: str) -> list[str]:
    """Every deviation from the conventions in one exposition (empty when it follows them)."""
    found = []
    for family in text_string_to_metric_families(text):
        name, kind = family.name, family.type
        full = name + "_total" if kind == "counter" else name
        if not name.startswith(PREFIXES) or not NAME.match(name):
            found.append(f"{full}: not a snake_case name with a component prefix {PREFIXES}")
        if NON_BASE_UNITS.search(full):
            found.append(f"{full}: uses a non-base unit (use seconds or bytes)")
        if kind == "counter":
            wrong = [s.name for s in family.samples if not s.name.endswith(("_total", "_created"))]
            if wrong:
                found.append(f"{full}: counter samples without _total: {wrong}")
        elif name.endswith("_total"):
            found.append(f"{full}: a {kind} named like a counter (_total)")
        if kind == "histogram" and not name.endswith(BASE_UNITS):
            found.append(f"{full}: a histogram without a base unit suffix {BASE_UNITS}")
        if name.endswith("_info") and any(s.value != 1 for s in family.samples):
            found.append(f"{full}: an _info gauge whose value is not 1")
        if not family.documentation.strip():
            found.append(f"{full}: no help text")
        for label in sorted({k for s in family.samples for k in s.labels} - ALLOWED_LABELS):
            found.append(f"{full}: label {label!r} is not a bounded dimension of the vocabulary")
    return found


def label_values(text: str) -> set[str]:
    return {v for family in text_string_to_metric_families(text) for s in family.samples for v in s.labels.values()}


def metric_names(text: str) -> set[str]:
    """Every sample name a query can use (counters' _total, histograms' _bucket/_sum/_count)."""
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}
