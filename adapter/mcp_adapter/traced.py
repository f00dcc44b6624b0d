"""A SERVER span per `/mcp` request, installed in front of the adapter's MCP app only when tracing is on.

The request's `traceparent` (the gateway's relay span) is the parent. The span's own context
replaces the request's trace headers before the MCP app sees them, so handlers running in
the session's task (not the request's) still find their parent: `tracing.within(headers)`.
A POST body is peeked (up to the body limit) for the JSON-RPC method and tool name, then
replayed unchanged; nothing of it is recorded beyond those names.
"""

from __future__ import annotations

import json
from typing import Any

from mcp_common import tracing
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
        peeked: list[Message] = await self._peek(receive) if scope["method"] == "POST" else []
        with tracing.server_span(f"mcp {scope['method']}", headers) as span:
            tracing.annotate_message(self._message(peeked), headers.get("mcp-session-id"))
            kept = [(k, v) for k, v in scope["headers"] if k.lower() not in _TRACE_HEADERS]
            own = [(k.encode(), v.encode()) for k, v in tracing.outgoing()]

            async def recorded(message: Message) -> None:
                if message["type"] == "http.response.start":
                    tracing.http_status(span, message["status"])
                await send(message)

            await self.app({**scope, "headers": kept + own}, _replay(peeked, receive), recorded)

    async def _peek(self, receive: Receive) -> list[Message]:
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages
            size += len(message.get("body", b""))
            if not message.get("more_body") or size > self.max_peek_bytes:
                return messages

    def _message(self, peeked: list[Message]) -> dict[str, Any] | None:
        if not peeked or peeked[-1].get("more_body") or peeked[-1]["type"] != "http.request":
            return None
        try:
            message = json.loads(b"".join(m.get("body", b"") for m in peeked))
        except (ValueError, RecursionError):
            return None  # the MCP app answers it with its own error
        return message if isinstance(message, dict) else None


def _replay(peeked: list[Message], receive: Receive) -> Receive:
    pending = list(peeked)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
