"""A SERVER span per `/mcp` request, installed in front of the adapter's MCP app only when tracing is on.

The request's `traceparent` header (the gateway's relay span) is the parent; without one, the
trace context the request carries in `params._meta` (SEP-414, what 2026-07-28 clients send);
the header wins when both are there. The span's own context replaces the request's trace
headers before the MCP app sees them, so handlers running in the session's task (not the
request's) still find their parent: `tracing.within(headers)`. A POST body is peeked (up to the
body limit) for the JSON-RPC method, tool name and `_meta` trace context, then replayed
unchanged; nothing of it is recorded beyond those names.
"""

from __future__ import annotations

from collections.abc import Mapping

from mcp_common import peek, tracing
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_TRACE_HEADERS = (b"traceparent", b"tracestate")


class TracedRequests:
    def __init__(self, app: ASGIApp, max_peek_bytes: int) -> None:
        self.app = app
        self.max_peek_bytes = max_peek_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        peeked: list[Message] = await peek.peek(receive, self.max_peek_bytes) if scope["method"] == "POST" else []
        message = peek.json_object(peek.whole_body(peeked))
        parent: Mapping[str, str] = headers if "traceparent" in headers else tracing.meta_carrier(message)
        with tracing.server_span(f"mcp {scope['method']}", parent) as span:
            tracing.annotate_message(message, headers.get("mcp-session-id"))
            kept = [(k, v) for k, v in scope["headers"] if k.lower() not in _TRACE_HEADERS]
            own = [(k.encode(), v.encode()) for k, v in tracing.outgoing()]

            async def recorded(message: Message) -> None:
                if message["type"] == "http.response.start":
                    tracing.http_status(span, message["status"])
                await send(message)

            await self.app({**scope, "headers": kept + own}, peek.replay(peeked, receive), recorded)
