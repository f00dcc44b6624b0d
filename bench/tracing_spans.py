"""The span work of one tool call, in isolation: what tracing adds on the request path and in the exporter.

Run as `python -m bench.tracing_spans on|off CALLS` (bench/tracing.py starts it in a child process, so
the tracer provider it installs stays out of the bench's own process). It makes the spans one
`tools/call` makes, through the same helpers (mcp_common/tracing.py) and with the real SDK, batch
processor and OTLP/HTTP exporter: the gateway's SERVER span with its auth, policy and limits children
and its CLIENT span to the adapter, then the adapter's SERVER and CLIENT spans. Calls are paced
(1 ms apart, like requests rather than a hot loop, so caches are as cold as in a server) and timed by
thread CPU clocks: the request path (the calling thread) and the exporter's thread apart. With `off`
the same helpers run with no tracer: the cost of tracing's presence in the code when it is off.
The OTLP receiver runs in another process.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

PACE_SECONDS = 0.001
WARMUP_CALLS = 200
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
GATEWAY_HEADERS = {"traceparent": TRACEPARENT}
NAMED = {"mcp.gateway.tenant": "bench", "mcp.gateway.profile": "bench"}
UPSTREAM = {"mcp.method.name": "tools/call", "gen_ai.tool.name": "echo", "mcp.gateway.upstream": "echo"}
NOOP = contextlib.nullcontext()
MESSAGE = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x"}}}


def one_call(tracing: Any) -> None:
    """The gateway's spans of one tool call, then the adapter's, with the servers' own `enabled()` guards."""
    on = tracing.enabled()
    # The gateway (front.py): no SERVER span at all when off; its children are shared no-ops then.
    with tracing.server_span("mcp POST", GATEWAY_HEADERS, **NAMED) if on else NOOP as span:
        with tracing.child_span("mcp.gateway.auth"):
            pass
        if on:
            tracing.annotate_message(MESSAGE, None)
        with tracing.child_span("mcp.gateway.policy"):
            pass
        with tracing.child_span("mcp.gateway.limits"):
            pass
        tracing.annotate(**{tracing.UPSTREAM: "echo"})  # proxy.py's interceptor
        adapter_headers = GATEWAY_HEADERS
        if on:  # aggregate.py: the CLIENT span to the adapter, only when on
            with tracing.child_span("tools/call echo", client=True, **UPSTREAM):
                adapter_headers = dict(tracing.outgoing())
        tracing.http_status(span, 200)
    if not on:  # the adapter (server.py): no TracedRequests wrapper, no span, when off
        return
    with tracing.server_span("mcp POST", adapter_headers) as span:
        tracing.annotate_message(MESSAGE, None)
        tracing.outgoing()
        with tracing.child_span("tools/call echo", client=True, **UPSTREAM):
            tracing.outgoing()
        tracing.http_status(span, 200)


def nothing(tracing: Any) -> None:
    """The timer's own cost, subtracted."""


def measure(on: bool, calls: int) -> dict[str, Any]:
    from mcp_common import tracing

    if on and not tracing.setup("bench-spans"):
        raise SystemExit("tracing_spans: OTEL_EXPORTER_OTLP_ENDPOINT is not set")
    for _ in range(WARMUP_CALLS):
        one_call(tracing)
        time.sleep(PACE_SECONDS)
    if on:
        _flush()
    others_before = _other_threads_cpu()
    request_path = _timed(one_call, tracing, calls) - _timed(nothing, tracing, calls)
    if on:
        _flush()
    exporter = _other_threads_cpu() - others_before
    return {
        "calls": calls,
        "spans_per_call": 7 if on else 0,
        "request_path_us_per_call": round(request_path * 1e6, 1),
        "exporter_us_per_call": round(exporter * 1e6 / calls, 1),
    }


def _timed(work: Callable[[Any], None], tracing: Any, calls: int) -> float:
    """Thread CPU seconds per call of `work`, calls paced like requests."""
    spent = 0.0
    for _ in range(calls):
        started = time.thread_time()
        work(tracing)
        spent += time.thread_time() - started
        time.sleep(PACE_SECONDS)
    return spent / calls


def _flush() -> None:
    from mcp_common import tracing

    tracing.flush()


def _other_threads_cpu() -> float:
    """CPU seconds of this process's threads other than the calling one (the exporter's)."""
    me = threading.get_native_id()
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for task in os.listdir("/proc/self/task"):
        if int(task) == me:
            continue
        try:
            with open(f"/proc/self/task/{task}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # a thread that ended meanwhile
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1] == "on", int(sys.argv[2]))))
