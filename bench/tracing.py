"""What tracing costs per call: the same gateway → adapter → upstream path with tracing off and on.

Two identical stacks (echo upstream, adapter, gateway with every per-call check on); in the
second the gateway and the adapter export every span (100 % sampling, the SDK's default for
root spans) over OTLP/HTTP to a loopback receiver (tests/support/otlp_receiver.py, in this
process, so its decoding is not charged to the gateway). wrk runs the 2026-07-28 stateless
`tools/call echo` at concurrency 1 and 16, off and on taking turns round by round, so a
change in the machine's load falls on both; the figures are the added p50 and the added CPU
per call of the gateway and of the adapter (the exporter's thread included), on minus off.

Whole-server CPU per call swings with the machine's load, so the span work of one call is also
timed in isolation (bench/tracing_spans.py, in a child process): on the request path and in the
exporter's thread, with tracing on and off.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from typing import Any

from bench.loadgen import MODERN
from bench.overhead import echo_adapter_config, limited_routing, measure
from bench.stack import ROOT, Stack
from tests.support.otlp_receiver import start_otlp_receiver

CONCURRENCY = (1, 16)
MODES = ("off", "on")
SPAN_CALLS = 3000  # calls per isolated span-work run (bench/tracing_spans.py)


def run(seconds: int, repeat: int) -> dict[str, Any]:
    receiver = start_otlp_receiver()
    on_env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_TRACES_SAMPLER": "always_on"}
    rounds: dict[str, list[list[dict[str, Any]]]] = {mode: [] for mode in MODES}
    try:
        with Stack("tracing") as stack:
            echo_base, _ = stack.python_module("echo", "bench.echo_server", ready_path="/mcp")
            stacks = {}
            for mode in MODES:
                env = on_env if mode == "on" else None
                adapter_url, adapter_pid = stack.adapter(f"echo-{mode}", echo_adapter_config(f"{echo_base}/mcp"), env)
                gateway = stack.gateway(mode, limited_routing(adapter_url), env=env)
                key = {"Authorization": f"Bearer {gateway.mint_key('bench', ['bench'])}"}
                stacks[mode] = (gateway.url("bench"), key, {"adapter": adapter_pid, "gateway": gateway.pid})
            for _ in range(repeat):  # off and on take turns: one round each, `repeat` times
                for mode, (url, key, pids) in stacks.items():
                    rounds[mode].append(measure(url, key, seconds, 1, CONCURRENCY, pids, MODERN))
        spans = len(receiver.received())
        span_work = {mode: _span_work(mode, receiver.endpoint) for mode in MODES}
    finally:
        receiver.shutdown()
    targets = {mode: [_combined([r[i] for r in rounds[mode]]) for i in range(len(CONCURRENCY))] for mode in MODES}
    added = []
    for off, on in zip(targets["off"], targets["on"], strict=True):
        cpu_off, cpu_on = off["cpu_ms_per_call"], on["cpu_ms_per_call"]
        added.append(
            {
                "concurrency": on["concurrency"],
                "added_p50_ms": round(on["p50_ms"] - off["p50_ms"], 3),
                "added_cpu_ms_per_call": {k: round(cpu_on[k] - cpu_off[k], 3) for k in cpu_on},
            }
        )
    return {
        "seconds_per_point": seconds,
        "repeat": repeat,
        "targets": targets,
        "added_by_tracing": added,
        "spans": spans,
        "span_work": span_work,
    }


def _span_work(mode: str, endpoint: str) -> dict[str, Any]:
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_SAMPLER": "always_on"}
    if mode == "off":
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT")
    command = [sys.executable, "-m", "bench.tracing_spans", mode, str(SPAN_CALLS)]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _combined(points: list[dict[str, Any]]) -> dict[str, Any]:
    """One load point over the rounds: median latency and rate, mean CPU per call."""
    combined = dict(points[0])
    for field in ("p50_ms", "p99_ms", "calls_per_s"):
        combined[field] = statistics.median(p[field] for p in points)
    combined["errors"] = sum(p["errors"] for p in points)
    combined["cpu_ms_per_call"] = {
        name: round(statistics.fmean(p["cpu_ms_per_call"][name] for p in points), 3)
        for name in points[0]["cpu_ms_per_call"]
    }
    return combined
