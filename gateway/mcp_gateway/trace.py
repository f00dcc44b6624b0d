"""What the gateway adds to each request it makes upstream on a client's behalf.

- W3C trace context (OpenTelemetry's `traceparent`/`tracestate`): the front records
  a request's trace headers in a context variable (without a `traceparent` header, the
  trace context the request carries in `params._meta`, SEP-414, so an upstream hears of
  a 2026-07-28 client's trace in a header too); malformed values are dropped rather
  than forwarded.
- The caller, `x-mcp-caller: <tenant>/<caller>` (from `current_call`), only to
  upstreams with `sendCallerHeader: true` (the operator sets it for its own
  adapters; a third-party MCP server never learns tenant and key ids): an adapter
  configured with `server.trustCallerHeader: true` keys `scope: per-caller`
  upstream sessions by it, so callers and tenants never share one. Without a
  current call (the profile's own catalog listing) no caller is sent: that is
  the adapter's anonymous catalog caller.

Every HTTP request the gateway makes to an upstream for a request carries them
(the SDK's client transport sends in the caller's context, through
`upstream_auth`; the pass-through's relay client calls `upstream_headers`
for each request it sends).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Mapping
from contextvars import ContextVar

import httpx2
from mcp_common import tracing

from mcp_gateway.context import current_call

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
MAX_TRACESTATE = 512
CALLER_HEADER = "x-mcp-caller"

inbound_trace: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("mcp_gateway_trace", default=())


def trace_headers(headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Valid W3C trace context from request headers, or from a request's `_meta` carrier (tracing.meta_carrier)."""
    parent = (headers.get("traceparent") or "").strip().lower()
    if not _TRACEPARENT.match(parent) or parent.startswith("ff") or set(parent[3:35]) == {"0"}:
        return ()
    state = (headers.get("tracestate") or "").strip()
    if state and len(state) <= MAX_TRACESTATE:
        return (("traceparent", parent), ("tracestate", state))
    return (("traceparent", parent),)


CLIENT_ERA_HEADER = "x-mcp-client-era"


def trace_only() -> list[tuple[str, str]]:
    """The headers to add to an upstream request made now: trace context.

    With tracing on, the span current when the request is sent is the upstream's parent
    (mcp_common/tracing.py); otherwise the client's own trace context passes through.
    """
    if tracing.enabled():
        return tracing.outgoing() or list(inbound_trace.get())
    return list(inbound_trace.get())


def with_caller() -> list[tuple[str, str]]:
    """Trace context and the caller, for an upstream that asked for it (`sendCallerHeader`)."""
    headers = trace_only()
    call = current_call.get()
    if call is not None:
        headers.append((CALLER_HEADER, f"{call.principal.tenant}/{call.principal.caller}"))
        if call.session is not None:
            # A handshake-era client's call relayed as 2026-07-28 (handshake_relay.py): an adapter that
            # keeps upstream sessions per caller and era serves it from the caller's handshake-era one.
            headers.append((CLIENT_ERA_HEADER, call.session.protocol_version))
    return headers


def upstream_headers(send_caller: bool) -> Callable[[], list[tuple[str, str]]]:
    return with_caller if send_caller else trace_only


class UpstreamContextAuth(httpx2.Auth):
    """Adds the current request's trace context (and caller, if asked) to an outgoing upstream request."""

    def __init__(self, headers: Callable[[], list[tuple[str, str]]]) -> None:
        self.headers = headers

    def auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        for name, value in self.headers():
            request.headers[name] = value
        yield request


_AUTHS = {True: UpstreamContextAuth(with_caller), False: UpstreamContextAuth(trace_only)}


def upstream_auth(send_caller: bool) -> UpstreamContextAuth:
    return _AUTHS[send_caller]
