"""W3C trace context (OpenTelemetry's `traceparent`/`tracestate`) from clients to upstreams.

The front records a request's trace headers in a context variable; every HTTP
request the gateway makes to an upstream on that request's behalf carries them
(the SDK's client transport sends in the caller's context). Malformed values are
dropped rather than forwarded.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from contextvars import ContextVar

import httpx2
from starlette.datastructures import Headers

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
MAX_TRACESTATE = 512

inbound_trace: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("mcp_gateway_trace", default=())


def trace_headers(headers: Headers) -> tuple[tuple[str, str], ...]:
    parent = (headers.get("traceparent") or "").strip().lower()
    if not _TRACEPARENT.match(parent) or parent.startswith("ff") or set(parent[3:35]) == {"0"}:
        return ()
    state = (headers.get("tracestate") or "").strip()
    if state and len(state) <= MAX_TRACESTATE:
        return (("traceparent", parent), ("tracestate", state))
    return (("traceparent", parent),)


class TraceContextAuth(httpx2.Auth):
    """Adds the current request's trace context to an outgoing upstream request."""

    def auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        for name, value in inbound_trace.get():
            request.headers[name] = value
        yield request
