"""The fast path for handshake-era (2025-11-25 and earlier) `tools/call`: relayed as a 2026-07-28 call.

Most clients in use speak the handshake revisions. On the SDK path each of their
POSTs gets a fresh transport, dispatcher, server connection and upstream client
session: most of the gateway's CPU per call. A handshake-era tool call, once the
front has applied auth, policy, rate limits and quotas, is rewritten into the
equivalent 2026-07-28 request (the era envelope in `params._meta`: protocol
version, the session's declared capabilities and its logging level, as the SDK
path's upstream session adds them; `Mcp-Method`, `Mcp-Name` and `Mcp-Param-*`
headers from the tool's schema) and handed to the 2026-07-28 relay
(passthrough.py): same interceptor (timeouts, retries, audit, metrics), same
pooled kept-alive connections to the upstream.

The answer goes back as the SDK path would give it to a handshake-era client:
`resultType` and the `serverInfo` stamp (2026-07-28 only) are removed, a JSON-RPC
error travels in an HTTP 200, and progress and log notifications are relayed
event by event. A client that drops its POST cancels the upstream request, as on
the SDK path (a handshake client's `notifications/cancelled` arrives as another
POST, which no per-request server of either path can match to this one).

The back channel (sampling, elicitation, roots). A 2026-07-28 request cannot carry
a server request made mid-call: a tool written for the handshake era (that asks its
client while it runs, as most do) fails on one (-32600, no back channel), and the
gateway cannot tell such tools from the others. So a session that declared any of
these capabilities takes this path only for upstreams told the client's era
(`sendCallerHeader`, which sends `x-mcp-client-era`: an adapter with
`trustCallerHeader`), which serve such a call on the caller's handshake-era
upstream session and turn its server requests into `input_required` rounds
(mcp_adapter.passthrough, mcp_adapter.server's `Exchange`); for any other upstream
it keeps the SDK path, whose upstream session is of the client's own era.

An upstream that needs the client answers `input_required`. The relay asks the
client itself, as the SDK path does: each input request goes
out on the POST's SSE stream as a server request whose id routes the answer home
(`gwr1.<replica>.<channel>.<n>`, backchannel.py: the client may POST its answer
to any replica), and the call is sent again with `inputResponses` and the
upstream's `requestState` (kept in this request, never shown to the client, so
not sealed). Each round goes through the interceptor, as a 2026-07-28 client's
rounds do (an audit record per round; the profile's timeout bounds the upstream's
work, not the person answering). An input request the session did not declare
the capability for fails the call with the spec's missing-capability error
(-32021), as on the SDK path.

Everything the relay is not sure about takes the SDK path unchanged: sessions with
a back channel toward other upstreams (above), declarations too large to keep in
the token, tools whose upstream does not speak 2026-07-28,
calls answering a round (`requestState`), task-augmented calls, and requests
without both JSON and SSE in `Accept`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import mcp_types as types
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import encode_header_value, find_invalid_x_mcp_header, mcp_param_headers, x_mcp_header_map
from mcp_adapter.aggregate import CURRENT_CALLER, Aggregator, Interceptor, ToolCall, ToolResult
from mcp_adapter.downstream import answer_type, missing_capability
from pydantic import ValidationError
from starlette.types import Message, Receive, Scope, Send

from mcp_gateway.backchannel import Relay
from mcp_gateway.context import CallContext, current_call
from mcp_gateway.passthrough import GatewayRelay, relayable
from mcp_gateway.sessions import SessionInfo

if TYPE_CHECKING:
    from mcp.server.request_state import RequestStateBoundary

# Capabilities that let a server ask the client something during a call (answered in rounds here).
BACK_CHANNEL_CAPABILITIES = ("sampling", "elicitation", "roots")
MAX_ROUNDS = 10  # input rounds of one call, as the adapter bridges them (mcp_adapter.server)
ANSWER_SECONDS = 300.0  # a person may be answering (elicitation); as long as an adapter keeps a round
_ORIGINAL = "mcp_gateway.handshake_request"  # scope key: what to do with a request the relay does not take
_REPLACED_HEADERS = frozenset({b"accept", b"content-type", b"mcp-protocol-version", b"mcp-method", b"mcp-name"})
_JSON = b"application/json"
_SSE = b"text/event-stream"
_EVENT = b"event: message\ndata: "
_SSE_HEADERS = [
    (b"content-type", _SSE),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]

Serve = Callable[[Scope, Receive, Send], Awaitable[None]]


def takes_fast_path(ctx: CallContext | None) -> bool:
    """Is this a handshake-era first-round tool call of a session whose declared capabilities are known?"""
    if ctx is None or ctx.session is None or not relayable(ctx.message):
        return False
    return ctx.session.capabilities is not None  # not kept in the token: unknown, so the SDK path decides


def _declares_back_channel(session: SessionInfo) -> bool:
    capabilities = session.capabilities or {}
    return any(capabilities.get(name) is not None for name in BACK_CHANNEL_CAPABILITIES)


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
        back_channel: Relay,
    ) -> None:
        self._agg = aggregator
        self._fallback = fallback
        self._back_channel = back_channel
        self._relay = _ClientRounds(_fallback_app, aggregator, interceptor, server_info, boundary, relayed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send, ctx: CallContext) -> None:
        modern = self._modern_request(scope, ctx)
        if modern is None or ctx.session is None:
            await self._fallback(scope, receive, send)
            return
        modern_scope, body = modern
        answer = _HandshakeAnswer(send)
        first = {**modern_scope, _ORIGINAL: (self._fallback, scope, receive, send)}
        await self._relay(first, _then(body, receive), answer)
        if answer.held is not None:
            await self._rounds(modern_scope, json.loads(body), receive, answer, ctx.session)

    async def _rounds(
        self, scope: Scope, request: dict[str, Any], receive: Receive, answer: _HandshakeAnswer, session: SessionInfo
    ) -> None:
        """Ask the client what the upstream asked, on this POST's stream, and resume the call with its answers."""
        inbox = _Inbox()
        route = self._back_channel.open_inbox(session.nonce, inbox.deliver)
        rid = request.get("id")

        async def unresumable(*_: Any) -> None:  # the tool or its upstream changed between two rounds
            lost = MCPError(code=types.INTERNAL_ERROR, message="the upstream's round could not be resumed; call again")
            await answer.error(rid, lost)

        try:
            for _ in range(MAX_ROUNDS):
                held, answer.held = answer.held, None
                if held is None:
                    return
                result = types.InputRequiredResult.model_validate(held["result"])
                try:
                    responses = await inbox.ask_all(route, result, answer, receive)
                except MCPError as exc:
                    await answer.error(rid, exc)
                    return
                if responses is None:
                    return  # the client left: nobody to answer
                params = {k: v for k, v in request["params"].items() if k != "requestState"}
                params["inputResponses"] = responses
                if result.request_state is not None:
                    params["requestState"] = result.request_state
                resumed = _encode({**request, "params": params})
                again = {**scope, _ORIGINAL: (unresumable, None, None, None)}
                await self._relay(again, _then(resumed, receive), answer)
            if answer.held is not None:
                too_many = f"the upstream asked for input more than {MAX_ROUNDS} times"
                await answer.error(rid, MCPError(code=types.INTERNAL_ERROR, message=too_many))
        finally:
            self._back_channel.close(route)

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
        if _declares_back_channel(session) and not getattr(source, "bridges_client_era", False):
            return None  # the upstream might ask this client mid-call, which 2026-07-28 cannot carry (module doc)
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


class _ClientRounds(GatewayRelay):
    """The 2026-07-28 relay, except that an input round is not sealed (it never leaves the gateway) and is
    refused when it asks for what the session did not declare (the client could not answer)."""

    async def _seal(self, call: ToolCall, result: types.InputRequiredResult) -> ToolResult:
        declared = _declared()
        for request in (result.input_requests or {}).values():
            refused = missing_capability(request, declared)
            if refused is not None:
                raise refused
        return result


def _declared() -> types.ClientCapabilities:
    ctx = current_call.get()
    raw = ctx.session.capabilities if ctx is not None and ctx.session is not None else None
    try:
        return types.ClientCapabilities.model_validate(raw or {})
    except ValidationError:
        return types.ClientCapabilities()


class _Inbox:
    """The client's answers to this call's server requests, by request id (delivered by the back channel)."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self._sent = 0

    async def deliver(self, message: dict[str, Any]) -> None:
        future = self._waiting.get(str(message.get("id")))
        if future is not None and not future.done():
            future.set_result(message)

    async def ask_all(
        self, route: str, result: types.InputRequiredResult, answer: _HandshakeAnswer, receive: Receive
    ) -> dict[str, Any] | None:
        """The client's answers to every input request of a round, in wire form; None if the client left."""
        responses: dict[str, Any] = {}
        for key, request in (result.input_requests or {}).items():
            reply = await self._ask(route, request, answer, receive)
            if reply is None:
                return None
            responses[key] = reply
        return responses

    async def _ask(
        self, route: str, request: types.InputRequest, answer: _HandshakeAnswer, receive: Receive
    ) -> dict[str, Any] | None:
        self._sent += 1
        rid = f"{route}.{self._sent}"
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._waiting[rid] = future
        left: asyncio.Future[Any] = loop.create_task(_disconnected(receive))
        try:
            await answer.event({"jsonrpc": "2.0", "id": rid, **_dump(request)})
            await asyncio.wait({future, left}, timeout=ANSWER_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        finally:
            left.cancel()
            self._waiting.pop(rid, None)
        if not future.done():
            if left.done() and not left.cancelled():
                return None
            raise MCPError(
                code=types.REQUEST_TIMEOUT,
                message=f"the client did not answer {request.method} within {ANSWER_SECONDS:g} s",
            )
        return _client_result(request, future.result())


def _client_result(request: types.InputRequest, reply: dict[str, Any]) -> dict[str, Any]:
    """The client's result as the upstream gets it; its error (or a malformed answer) fails the call."""
    error = reply.get("error")
    if "result" not in reply:
        if isinstance(error, dict) and isinstance(error.get("code"), int):
            raise MCPError(code=error["code"], message=str(error.get("message", "")), data=error.get("data"))
        raise MCPError(code=types.INTERNAL_ERROR, message=f"the client could not answer {request.method}")
    try:
        return _dump(answer_type(request).model_validate(reply["result"], by_name=False))
    except ValidationError:
        raise MCPError(code=types.INTERNAL_ERROR, message=f"the client could not answer {request.method}") from None


def _dump(model: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(by_alias=True, mode="json", exclude_none=True)
    return dumped


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


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
    """`send` for the relay: its 2026-07-28 answers rewritten for a handshake-era client on the way out.

    An `input_required` answer is held back (`held`) for the relay to ask the client; once a server
    request went out the response is an SSE stream, which later rounds continue.
    """

    def __init__(self, send: Send) -> None:
        self._send = send
        self._json: list[bytes] | None = None  # the body of a JSON answer, held until complete
        self.streaming = False  # the client's response started as SSE
        self.held: dict[str, Any] | None = None

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = dict(message.get("headers", []))
            if headers.get(b"content-type", b"").startswith(_JSON):
                self._json = []
            elif not self.streaming:  # a later round's stream continues the one the client has
                self.streaming = True
                await self._send(message)
            return
        if message["type"] != "http.response.body":
            await self._send(message)
            return
        body = message.get("body", b"")
        if self._json is not None:
            self._json.append(body)
            if not message.get("more_body", False):
                raw, self._json = b"".join(self._json), None
                await self._final(json.loads(raw))
            return
        if not message.get("more_body", False) and body.startswith(_EVENT):
            await self._final(json.loads(body[len(_EVENT) :].rstrip(b"\n")))
            return
        await self._send(message)

    async def _final(self, message: Any) -> None:
        result = message.get("result") if isinstance(message, dict) else None
        if isinstance(result, dict) and result.get("resultType") == "input_required":
            self.held = message
            return
        data = _encode(handshake_message(message))
        if self.streaming:
            await self._send({"type": "http.response.body", "body": _EVENT + data + b"\n\n", "more_body": False})
            return
        # The handshake era carries JSON-RPC errors in an HTTP 200, as the SDK path answers them.
        headers = [(b"content-type", _JSON), (b"content-length", str(len(data)).encode())]
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})
        await self._send({"type": "http.response.body", "body": data, "more_body": False})

    async def event(self, message: dict[str, Any]) -> None:
        """A server request to the client, on the response's SSE stream (started here if need be)."""
        if not self.streaming:
            self.streaming = True
            await self._send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        await self._send({"type": "http.response.body", "body": _EVENT + _encode(message) + b"\n\n", "more_body": True})

    async def error(self, request_id: Any, exc: MCPError) -> None:
        error = exc.error.model_dump(by_alias=True, mode="json", exclude_none=True)
        await self._final({"jsonrpc": "2.0", "id": request_id, "error": error})


def _encode(message: Any) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


__all__ = ["BACK_CHANNEL_CAPABILITIES", "HandshakeRelay", "handshake_message", "takes_fast_path"]
