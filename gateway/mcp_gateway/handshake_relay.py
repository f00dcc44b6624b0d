"""The fast path for handshake-era (2025-11-25 and earlier) `tools/call`: relayed as a 2026-07-28 call.

Most clients in use speak the handshake revisions. On the SDK path each of their
POSTs gets a fresh transport, dispatcher, server connection and upstream client
session: most of the gateway's CPU per call. A handshake-era tool call needs none
of that when nothing can travel server → client during it, that is when the
session declared none of the capabilities a server request needs (sampling,
elicitation, roots). Such a call, once the front has applied auth, policy, rate
limits and quotas, is rewritten into the equivalent 2026-07-28 request (the era
envelope in `params._meta`: protocol version, the session's declared
capabilities and its logging level, as the SDK path's upstream session adds
them; `Mcp-Method`, `Mcp-Name` and `Mcp-Param-*` headers from the tool's schema)
and handed to the 2026-07-28 relay (passthrough.py): same interceptor (timeouts,
retries, audit, metrics), same pooled kept-alive connections to the upstream.

The answer goes back as the SDK path would give it to a handshake-era client:
`resultType` and the `serverInfo` stamp (2026-07-28 only) are removed, a JSON-RPC
error travels in an HTTP 200, and progress and log notifications are relayed
event by event. A client that drops its POST cancels the upstream request, as on
the SDK path (a handshake client's `notifications/cancelled` arrives as another
POST, which no per-request server of either path can match to this one).

An upstream that answers `input_required` would have to ask the client, which
declared it cannot answer: the client gets the spec's missing-capability error
(-32021), as from the SDK path. Everything the relay is not sure about takes the
SDK path unchanged: sessions declaring back-channel capabilities (or declarations
too large to keep in the token), tools whose upstream does not speak 2026-07-28,
calls answering a round (`requestState`), task-augmented calls, and requests without
both JSON and SSE in `Accept`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import mcp_types as types
from mcp.shared.inbound import encode_header_value, find_invalid_x_mcp_header, mcp_param_headers, x_mcp_header_map
from mcp_adapter.aggregate import CURRENT_CALLER, Aggregator, Interceptor, ToolCall, ToolResult
from mcp_adapter.downstream import missing_capability
from starlette.types import Message, Receive, Scope, Send

from mcp_gateway.context import CallContext
from mcp_gateway.passthrough import GatewayRelay, relayable

if TYPE_CHECKING:
    from mcp.server.request_state import RequestStateBoundary

# Capabilities that let a server send requests to the client during a call: the SDK path serves those.
BACK_CHANNEL_CAPABILITIES = ("sampling", "elicitation", "roots")
_ORIGINAL = "mcp_gateway.handshake_request"  # scope key: the request as received, for the fallback
_REPLACED_HEADERS = frozenset({b"accept", b"content-type", b"mcp-protocol-version", b"mcp-method", b"mcp-name"})
_JSON = b"application/json"
_SSE = b"text/event-stream"

Serve = Callable[[Scope, Receive, Send], Awaitable[None]]


def no_back_channel(ctx: CallContext | None) -> bool:
    """Is this a handshake-era call during which the server can ask its client nothing?"""
    if ctx is None or ctx.session is None or not relayable(ctx.message):
        return False
    capabilities = ctx.session.capabilities
    if capabilities is None:  # not kept in the token: unknown, so the SDK path decides
        return False
    return not any(capabilities.get(name) is not None for name in BACK_CHANNEL_CAPABILITIES)


class HandshakeRelay:
    """Relays eligible handshake-era tool calls as 2026-07-28 ones; anything else goes to `fallback`."""

    def __init__(
        self,
        aggregator: Aggregator,
        interceptor: Interceptor,
        server_info: Any,
        boundary: RequestStateBoundary,
        relayed: Callable[[], None],
        fallback: Serve,
    ) -> None:
        self._agg = aggregator
        self._fallback = fallback
        self._relay = _RefusingRounds(_fallback_app, aggregator, interceptor, server_info, boundary, relayed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send, ctx: CallContext) -> None:
        modern = self._modern_request(scope, ctx)
        if modern is None:
            await self._fallback(scope, receive, send)
            return
        modern_scope, body = modern
        modern_scope[_ORIGINAL] = (self._fallback, scope, receive, send)
        await self._relay(modern_scope, _then(body, receive), _HandshakeAnswer(send))

    def _modern_request(self, scope: Scope, ctx: CallContext) -> tuple[Scope, bytes] | None:
        """The 2026-07-28 scope and body of this call, or None when it must take the SDK path."""
        message, session = ctx.message or {}, ctx.session
        params = message.get("params")
        if session is None or not isinstance(params, dict) or not _accepts_both(scope):
            return None
        if "task" in params:  # a task-augmented call (2025-11-25 tasks): the SDK path knows what to make of it
            return None
        name, arguments = params.get("name"), params.get("arguments")
        if not isinstance(name, str) or not isinstance(arguments, dict | None):
            return None
        entry = self._agg.catalog.tools.get(name)
        if entry is None:
            return None
        source_name, _ = self._agg.catalog.tool_routes[name]
        source = self._agg.sources.get(source_name)
        relay_target = getattr(source, "relay_target", None)
        target = relay_target() if relay_target is not None else None
        schema = entry[1].input_schema
        if target is None or find_invalid_x_mcp_header(schema) is not None:
            return None
        meta = dict(params.get("_meta") or {}) if isinstance(params.get("_meta"), dict) else {}
        meta[types.PROTOCOL_VERSION_META_KEY] = target.protocol_version
        meta[types.CLIENT_CAPABILITIES_META_KEY] = session.capabilities or {}
        level_of = getattr(source, "log_level_of", None)
        meta[types.LOG_LEVEL_META_KEY] = level_of(CURRENT_CALLER.get()) if level_of is not None else "debug"
        body = json.dumps(
            {**message, "params": {**params, "_meta": meta}}, separators=(",", ":"), ensure_ascii=False
        ).encode()
        headers = [(k, v) for k, v in scope["headers"] if k not in _REPLACED_HEADERS]
        headers += [
            (b"accept", b"application/json, text/event-stream"),
            (b"content-type", _JSON),
            (b"mcp-protocol-version", target.protocol_version.encode()),
            (b"mcp-method", b"tools/call"),
            (b"mcp-name", encode_header_value(name).encode("latin-1")),
        ]
        for key, value in mcp_param_headers(x_mcp_header_map(schema), arguments or {}).items():
            headers.append((key.lower().encode("latin-1"), value.encode("latin-1")))
        return {**scope, "headers": headers}, body


class _RefusingRounds(GatewayRelay):
    """The 2026-07-28 relay, except that an input round is refused: this client declared it cannot answer."""

    async def _seal(self, call: ToolCall, result: types.InputRequiredResult) -> ToolResult:
        for request in (result.input_requests or {}).values():
            refused = missing_capability(request, types.ClientCapabilities())
            if refused is not None:
                raise refused
        return result


async def _fallback_app(scope: Scope, receive: Receive, send: Send) -> None:
    """What the relay does not take: the request as received goes to the SDK path."""
    serve, original_scope, original_receive, original_send = scope[_ORIGINAL]
    await serve(original_scope, original_receive, original_send)


def _accepts_both(scope: Scope) -> bool:
    accept = b",".join(v for k, v in scope["headers"] if k == b"accept")
    return _JSON in accept and _SSE in accept


def _then(body: bytes, receive: Receive) -> Receive:
    """The rewritten body first, then the client's own stream (for its disconnect)."""
    pending = True

    async def replaying() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replaying


def handshake_message(message: Any) -> Any:
    """A 2026-07-28 response as a handshake-era client gets it: no `resultType`, no `serverInfo` stamp."""
    if not isinstance(message, dict):
        return message
    result = message.get("result")
    if isinstance(result, dict):
        result.pop("resultType", None)
        meta = result.get("_meta")
        if isinstance(meta, dict):
            meta.pop(types.SERVER_INFO_META_KEY, None)
            if not meta:
                del result["_meta"]
    return message


class _HandshakeAnswer:
    """`send` for the relay: its 2026-07-28 answer rewritten for a handshake-era client on the way out."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._json: list[bytes] | None = None  # the body of a JSON answer, held until complete

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = dict(message.get("headers", []))
            if headers.get(b"content-type", b"").startswith(_JSON):
                self._json = []
                return
            await self._send(message)
            return
        if message["type"] != "http.response.body":
            await self._send(message)
            return
        body = message.get("body", b"")
        if self._json is not None:
            self._json.append(body)
            if not message.get("more_body", False):
                await self._send_json(b"".join(self._json))
            return
        if not message.get("more_body", False) and body.startswith(b"event: message\ndata: "):
            data = body[len(b"event: message\ndata: ") :].rstrip(b"\n")
            body = b"event: message\ndata: " + _encode(handshake_message(json.loads(data))) + b"\n\n"
        await self._send({**message, "body": body})

    async def _send_json(self, raw: bytes) -> None:
        data = _encode(handshake_message(json.loads(raw)))
        # The handshake era carries JSON-RPC errors in an HTTP 200, as the SDK path answers them.
        headers = [(b"content-type", _JSON), (b"content-length", str(len(data)).encode())]
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})
        await self._send({"type": "http.response.body", "body": data, "more_body": False})


def _encode(message: Any) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


__all__ = ["BACK_CHANNEL_CAPABILITIES", "HandshakeRelay", "handshake_message", "no_back_channel"]
