"""The cost of per-caller CEL policy rules (`policy.rules`, rules.py) per tool call.

Two views, side by side in one run. End to end: two profiles on one gateway differ only in a
20-rule policy (`plain`, `ruled`; same upstream, same labelled API key), measured in turns
(plain, ruled, plain, ruled, ...) so that a machine whose load drifts weighs on both alike;
the medians give the added p50 at concurrency 1, the added time per call at concurrency 16 and
the added gateway CPU per call (the steadiest figure on a shared machine). In process: the
gateway's own `RuleSet.decide()` timed call by call as the front runs it for a `tools/call`
(a new caller object per request, as authentication makes one), p50 and p99, with the
memoised argument-free verdicts (the steady state) and with every rule evaluated (a memo miss:
a new caller, tool or upstream).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

from mcp_gateway.auth import Principal
from mcp_gateway.config import Policy

from bench.overhead import echo_adapter_config, measure
from bench.stack import Stack

LOOPS = 5000


def twenty_rules() -> list[dict[str, Any]]:
    """A realistic mix: 14 on names/upstreams/claims/key labels, 5 on the call's arguments, 1 allow rule."""
    rules: list[dict[str, Any]] = []
    for i in range(9):
        when = f'name == "admin_tool_{i}" && !(has(claims.groups) && "admins" in claims.groups)'
        rules.append({"name": f"admins-only-{i}", "effect": "deny", "when": when, "kinds": ["tool"]})
    for i in range(4):
        when = f'upstream == "restricted-{i}" && caller.kind != "oidc"'
        rules.append({"name": f"restricted-upstream-{i}", "effect": "deny", "when": when})
    when = 'name.startsWith("admin_") && has(key.labels.team) && key.labels.team == "contractors"'
    rules.append({"name": "no-admin-for-contractors", "effect": "deny", "when": when, "kinds": ["tool"]})
    for i in range(5):
        when = f'name == "echo" && has(arguments.text) && size(arguments.text) > {10_000 + i}'
        rules.append({"name": f"short-text-{i}", "effect": "deny", "when": when, "kinds": ["tool"]})
    rules.append({"name": "tenant-members", "effect": "allow", "when": 'caller.tenant == "bench"'})
    return rules


def _routing(adapter_url: str) -> dict[str, Any]:
    upstreams = [{"name": "echo", "url": adapter_url, "prefix": "never"}]
    return {
        "tenants": [{"id": "bench"}],
        "profiles": [
            {"id": "plain", "tenant": "bench", "upstreams": upstreams},
            {"id": "ruled", "tenant": "bench", "upstreams": upstreams, "policy": {"rules": twenty_rules()}},
        ],
    }


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_us": round(statistics.median(ordered), 2),
        "p99_us": round(ordered[int(len(ordered) * 0.99) - 1], 2),
    }


def in_process() -> dict[str, Any]:
    """Microseconds per `decide()` of a tools/call, each call timed on its own."""
    from mcp_gateway.rules import RuleSet

    policy = Policy.model_validate({"rules": twenty_rules()})
    claims = {"keyId": "k1", "keyName": "bench", "keyLabels": {"team": "platform"}, "groups": ["dev", "ops"]}
    arguments = {"text": "hello"}
    out: dict[str, Any] = {"rules": len(policy.rules)}
    for label, cold in (("steady", False), ("every_rule", True)):
        rules = RuleSet(policy.rules)
        samples = []
        for i in range(LOOPS + 200):
            caller = Principal("apiKey", "bench", "key:k1", claims=dict(claims))  # a new one per request
            if cold:
                rules = RuleSet(policy.rules)  # no memo: all 20 rules evaluated
            began = time.perf_counter()
            verdict = rules.decide("tool", "echo", "echo", caller, arguments)
            elapsed = time.perf_counter() - began
            assert verdict.allowed
            if i >= 200:  # warm-up left out
                samples.append(elapsed * 1e6)
        out[label] = _percentiles(samples)
    empty = RuleSet([])
    caller = Principal("apiKey", "bench", "key:k1", claims=dict(claims))
    began = time.perf_counter()
    for _ in range(LOOPS):
        empty.decide("tool", "echo", "echo", caller, arguments)
    out["no_rules_us"] = round((time.perf_counter() - began) / LOOPS * 1e6, 3)
    return out


PROFILES = ("plain", "ruled")


def _combine(points: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The median of several runs of one load point (errors summed)."""
    out: dict[str, Any] = {"concurrency": points[0]["concurrency"]}
    for field in ("p50_ms", "p99_ms", "calls_per_s"):
        out[field] = round(statistics.median(p[field] for p in points), 3)
    out["errors"] = sum(p["errors"] for p in points)
    names = points[0]["cpu_ms_per_call"]
    out["cpu_ms_per_call"] = {n: round(statistics.median(p["cpu_ms_per_call"][n] for p in points), 3) for n in names}
    return out


def run(seconds: int, repeat: int = 3) -> dict[str, Any]:
    with Stack("policy") as stack:
        echo_base, _ = stack.python_module("echo", "bench.echo_server", ready_path="/mcp")
        adapter_url, _ = stack.adapter("echo", echo_adapter_config(f"{echo_base}/mcp"))
        gateway = stack.gateway("policy", _routing(adapter_url))
        key = gateway.mint_key("bench", list(PROFILES), labels={"team": "platform"})
        headers = {"Authorization": f"Bearer {key}"}
        pids = {"gateway": gateway.pid}
        runs: dict[str, list[list[dict[str, Any]]]] = {pid: [] for pid in PROFILES}
        for _ in range(repeat):  # in turns: plain, ruled, plain, ruled, ...
            for pid in PROFILES:
                runs[pid].append(measure(gateway.url(pid), headers, seconds, 1, (1, 16), pids))
    points = {pid: [_combine([r[i] for r in runs[pid]]) for i in range(2)] for pid in PROFILES}
    base, ruled = points["plain"], points["ruled"]
    added = {
        "added_p50_ms_c1": round(ruled[0]["p50_ms"] - base[0]["p50_ms"], 3),
        "added_ms_per_call_c16": round(1000 / ruled[1]["calls_per_s"] - 1000 / base[1]["calls_per_s"], 3),
        "added_gateway_cpu_ms_per_call_c1": round(
            ruled[0]["cpu_ms_per_call"]["gateway"] - base[0]["cpu_ms_per_call"]["gateway"], 3
        ),
        "added_gateway_cpu_ms_per_call_c16": round(
            ruled[1]["cpu_ms_per_call"]["gateway"] - base[1]["cpu_ms_per_call"]["gateway"], 3
        ),
    }
    return {"end_to_end": points, "added": added, "in_process": in_process(), "turns": repeat}
