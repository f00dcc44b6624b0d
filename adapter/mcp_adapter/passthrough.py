"""Pass-through of 2026-07-28 `tools/call` requests to remote MCP sources that speak 2026-07-28.

Such a request is one self-contained POST and so is the upstream's answer, so
the adapter need not decode it into SDK models, run it through a server and a
client session and encode it again (most of the adapter's CPU per call). The
request's bytes go to the source's pooled HTTP client unchanged, except:
`params.name` (and the `Mcp-Name` header) become the upstream name when the
tool was prefixed; the headers sent are the MCP ones (`Mcp-Protocol-Version`,
`Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`), `Accept`, trace context
(`traceparent`, `tracestate`) and the source's own configured headers, never
the client's credentials or its `X-MCP-Caller`. The answer is relayed: a JSON
body as JSON, an SSE stream event by event as it arrives (progress and log
notifications reach the client live); in the final response only the upstream's
`serverInfo` stamp is replaced by the adapter's, as on the SDK path.

What stays as on the SDK path: the access policy and routing (only tools of the
current catalog), the interceptor (`ToolCall`, `proceed()` returning the parsed
`CallToolResult`/`InputRequiredResult` or raising the upstream's `MCPError`),
per-call metrics, the source's `timeoutSeconds`, and cancellation (a client
that drops its POST closes the upstream request, which cancels the upstream's
handler). A transport failure raises `RelayError`, whose `sent` tells a connect failure (never
reached the upstream: `UNAVAILABLE`, safe to retry) from one after sending (outcome unknown:
`INTERNAL_ERROR`, retried only by whoever knows the tool to be idempotent).

Everything else takes the SDK path (`app`): other methods, handshake-era
requests, a gateway's handshake-era client that declared sampling, elicitation or
roots (trusted `x-mcp-client-era`: served on its era's upstream session, whose
server requests become input rounds), stdio or handshake-only sources, `scope: per-caller` sources, a
source whose upstream is not connected yet, a `requestState` minted by the
adapter itself, and any request the checks here are not sure about (missing or
repeated routing headers, a body that is not one well-formed request, a body
over the size limit), so that the SDK answers with exactly its usual error.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mcp_types as types
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import ERROR_CODE_HTTP_STATUS, decode_header_value, encode_header_value
from mcp_common import tracing
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_adapter.after_response import deferring
from mcp_adapter.aggregate import CURRENT_CALLER, Aggregator, ToolCall, ToolResult, measured
from mcp_adapter.downstream import EXCHANGE_PREFIX
from mcp_adapter.metrics import METRICS
from mcp_adapter.relay_client import RelayClient, RelayResponse, RelaySent, RelayUnsent
from mcp_adapter.upstream import UNAVAILABLE

logger = logging.getLogger(__name__)

_FORWARDED = frozenset({b"accept", b"mcp-protocol-version", b"traceparent", b"tracestate"})
_ROUTING = frozenset({b"mcp-protocol-version", b"mcp-method", b"mcp-name"})
_PARAM_PREFIX = b"mcp-param-"
_CALLER = b"x-mcp-caller"
CLIENT_ERA_HEADER = b"x-mcp-client-era"  # a gateway's handshake-era client, trusted like `x-mcp-caller`
BACK_CHANNEL_CAPABILITIES = ("sampling", "elicitation", "roots")
_SSE_START_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]
_JSON = [(b"content-type", b"application/json")]


@dataclass(frozen=True)
class RelayTarget:
    """Where a source's pass-through calls go: its endpoint, over its own pooled client."""

    client: RelayClient
    protocol_version: str
    timeout: float


def _serves_sessions(source: Any) -> bool:
    ready = getattr(source, "session_relay_ready", None)
    return ready is not None and bool(ready())


@dataclass
class _Request:
    id: Any
    name: str
    arguments: dict[str, Any] | None
    version: str
    headers: dict[bytes, bytes]
    body: bytes
    back_channel: bool = False  # the client declared sampling, elicitation or roots


class PassThrough:
    """ASGI app in front of the SDK's endpoint: relays what it can (see the module doc), else hands over to `app`.

    `aggregator` is read for `catalog`, `policy`, `sources` (a source offers `relay_target()`) and
    `interceptor` only, so an embedder may pass a view with its own interceptor (the gateway does).
    `count_calls` False leaves the adapter's call metrics alone (an embedder that counts calls itself
    and does not serve the adapter's metrics). `session_relay` (session_relay.py) serves calls of sources
    that relay no bytes (stdio, handshake-era or per-caller) on their live upstream session instead.
    """

    def __init__(
        self,
        app: ASGIApp,
        aggregator: Aggregator,
        server_info: dict[str, Any],
        *,
        trust_caller_header: bool,
        max_body_bytes: int,
        count_calls: bool = True,
        session_relay: SessionRelayFactory | None = None,
        own_exchanges: bool = True,
    ) -> None:
        self.app = app
        self.own_exchanges = own_exchanges
        self.session_relay = session_relay
        self.count_calls = count_calls
        self.agg = aggregator
        self.server_info = server_info
        self.trust_caller_header = trust_caller_header
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _candidate_headers(scope)
        if headers is None:
            await self.app(scope, receive, send)
            return
        name = decode_header_value(headers[b"mcp-name"].decode("latin-1")) or ""
        routed = self._route(name, headers[b"mcp-protocol-version"].decode("latin-1"))
        if routed is None:
            await self.app(scope, receive, send)
            return
        body, complete = await _read_body(receive, self.max_body_bytes)
        request = _parse(body, name, headers, self.own_exchanges) if complete else None
        upstream, target, source_name = routed
        relay: _Relay | None = None
        if request is not None:
            caller = self._caller(headers)
            if isinstance(target, RelayTarget):
                if not self._bridged(request):
                    relay = _Relay(self, request, upstream, target, source_name, caller, send)
            elif self.session_relay is not None:
                relay = self.session_relay(self, request, upstream, target, source_name, caller, send)
        if relay is None:
            await self.app(scope, _replay(body, complete, receive), send)
            return
        await relay.run(receive)

    def _route(self, name: str, version: str) -> tuple[str, RelayTarget | Any, str] | None:
        """The upstream name, where to relay (a `RelayTarget`, or a source for `session_relay`) and the source."""
        entry = self.agg.catalog.tools.get(name)
        if entry is None or not self.agg.policy.allows_tool(name):
            return None  # unknown or hidden: the SDK path answers as usual
        source_name, upstream = self.agg.catalog.tool_routes[name]
        source = self.agg.sources.get(source_name)
        relay_target = getattr(source, "relay_target", None)
        target = relay_target() if relay_target is not None else None
        if target is not None and target.protocol_version == version:
            return upstream, target, source_name
        if target is None and self.session_relay is not None and _serves_sessions(source):
            return upstream, source, source_name
        return None

    def _bridged(self, request: _Request) -> bool:
        """A gateway relaying a handshake-era client that may be asked things mid-call (it says so in the
        trusted `x-mcp-client-era`)? The SDK path serves it on the caller's handshake-era upstream session,
        whose server requests it turns into input rounds (server.py's `Exchange`): a tool that asks its
        client mid-call, as handshake-era tools do, would fail on a 2026-07-28 request."""
        if not request.back_channel or not self.trust_caller_header:
            return False
        return request.headers.get(CLIENT_ERA_HEADER, b"").decode("latin-1") in HANDSHAKE_PROTOCOL_VERSIONS

    def _caller(self, headers: dict[bytes, bytes]) -> str:
        if self.trust_caller_header and (value := headers.get(_CALLER)):
            return value.decode("latin-1")
        return CURRENT_CALLER.get()


class _Relay:
    """One relayed call: the interceptor around the upstream exchange, and the client's response."""

    def __init__(
        self,
        owner: PassThrough,
        request: _Request,
        upstream: str,
        target: RelayTarget | None,
        source: str,
        caller: str,
        send: Send,
    ) -> None:
        self.owner = owner
        self.request = request
        self.upstream = upstream
        self.target = target
        self.source = source
        self.caller = caller
        self.send = send
        self.streaming = False  # committed to text/event-stream towards the client
        self.relayed: tuple[ToolResult, dict[str, Any]] | None = None

    async def run(self, receive: Receive) -> None:
        """Answer the call; a client that disconnects first cancels it, and so its upstream request.

        Plain asyncio tasks rather than an anyio task group and cancel scope: this runs once per
        relayed call, where anyio's bookkeeping was a measurable share of the CPU.
        """
        loop = asyncio.get_running_loop()
        # Bookkeeping the interceptor defers (after_response.py) runs as this block ends: the
        # answer task's last write has left by then (turn_writes.py sends it as that task's turn ends).
        with deferring():
            answer = loop.create_task(self._answer())
            watcher = loop.create_task(_cancel_on_disconnect(receive, answer))
            try:
                await answer
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # this request itself is being cancelled
                # else the client left: nobody to answer
            finally:
                watcher.cancel()

    async def _answer(self) -> None:
        call = ToolCall(self.caller, self.request.name, self.source, self.upstream, self.request.arguments)
        try:
            result = await self.owner.agg.interceptor(call, self._proceed)
        except MCPError as exc:
            await self._finish({"jsonrpc": "2.0", "id": self.request.id, "error": _error_dict(exc)}, exc.code)
            return
        if self.relayed is not None and self.relayed[0] is result:
            message = self.relayed[1]  # the upstream's own answer, as received
        else:  # the interceptor answered itself: encode its result as the SDK path would
            dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
            dumped.setdefault("resultType", "complete")
            message = {"jsonrpc": "2.0", "id": self.request.id, "result": dumped}
        self._stamp(message["result"])
        await self._finish(message, None)

    async def _proceed(self) -> ToolResult:
        if not tracing.enabled():
            return await self._counted()
        attributes = {tracing.METHOD: "tools/call", tracing.TOOL: self.upstream, tracing.UPSTREAM: self.source}
        with tracing.child_span(f"tools/call {self.upstream}", client=True, **attributes):
            result = await self._counted()
            if isinstance(result, types.CallToolResult) and result.is_error:
                tracing.refused("tool_error", "the tool reported an error")
            return result

    async def _counted(self) -> ToolResult:
        if not self.owner.count_calls:
            return await self._exchange()
        METRICS.passthrough.labels(self.source).inc()
        work = self._exchange()
        return await measured(self.source, "tools/call", self.request.name, work)

    async def _exchange(self) -> ToolResult:
        what = f"tools/call {self.request.name!r}"
        assert self.target is not None
        try:
            async with asyncio.timeout(self.target.timeout):
                message = await self._upstream_answer()
        except TimeoutError:
            raise MCPError(
                code=types.REQUEST_TIMEOUT,
                message=f"source {self.source!r} did not answer {what} within {self.target.timeout:g}s "
                "(timeoutSeconds)",
            ) from None
        except RelayUnsent as exc:
            logger.warning("pass-through to upstream failed: %s", exc, extra={"source": self.source})
            raise RelayError(
                code=UNAVAILABLE,
                message=f"source {self.source!r} could not be reached for {what} ({exc}); retry shortly",
                sent=False,
            ) from None
        except RelaySent as exc:
            logger.warning("pass-through failed after sending: %s", exc, extra={"source": self.source})
            raise _outcome_unknown(self.source, what, str(exc)) from None
        if "error" in message:
            error = message["error"] if isinstance(message["error"], dict) else {}
            raise MCPError(
                code=int(error.get("code", types.INTERNAL_ERROR)),
                message=str(error.get("message", "upstream error")),
                data=error.get("data"),
            )
        result = message.get("result")
        if not isinstance(result, dict):
            raise MCPError(code=types.INTERNAL_ERROR, message=f"source {self.source!r} answered {what} with no result")
        parsed: ToolResult
        if result.get("resultType") == "input_required":
            parsed = types.InputRequiredResult.model_validate(result)
        else:
            parsed = types.CallToolResult.model_validate(result)
        self.relayed = (parsed, message)
        return parsed

    async def _upstream_answer(self) -> dict[str, Any]:
        """Send the request upstream; relay notifications as they come; the final JSON-RPC response."""
        body = _renamed(self.request, self.upstream)
        headers = _upstream_headers(self.request, self.upstream)
        if tracing.enabled():  # the upstream's parent is this call's span, not the request's
            headers.update(tracing.outgoing())
        assert self.target is not None
        async with self.target.client.post(body, headers) as response:
            content_type = response.content_type
            if content_type.startswith("text/event-stream"):
                return await self._relay_events(response)
            if not content_type.startswith("application/json"):
                shown = content_type or "no body"
                raise MCPError(
                    code=types.INTERNAL_ERROR,
                    message=f"source {self.source!r} answered HTTP {response.status} ({shown})",
                )
            raw = await response.read()
        return _response_message(raw, self.source)

    async def _relay_events(self, response: RelayResponse) -> dict[str, Any]:
        buffer = b""
        async for chunk in response.chunks():
            buffer += chunk.replace(b"\r\n", b"\n")
            while (end := buffer.find(b"\n\n")) >= 0:
                event, buffer = buffer[: end + 2], buffer[end + 2 :]
                message = _final_message(event)
                if message is not None:
                    return message
                await self._stream(event)
        raise _outcome_unknown(self.source, f"tools/call {self.request.name!r}", "event stream ended early")

    async def _stream(self, event: bytes) -> None:
        """Relay one notification (or keepalive) event, committing the client's response to SSE first."""
        if not self.streaming:
            self.streaming = True
            await self.send({"type": "http.response.start", "status": 200, "headers": _SSE_START_HEADERS})
        await self.send({"type": "http.response.body", "body": event, "more_body": True})

    def _stamp(self, result: Any) -> None:
        """The adapter's `serverInfo` in place of the upstream's: the client talks to the adapter."""
        if not isinstance(result, dict):
            return
        meta = result.get("_meta")
        if isinstance(meta, dict):
            meta[types.SERVER_INFO_META_KEY] = self.owner.server_info
        else:
            result["_meta"] = {types.SERVER_INFO_META_KEY: self.owner.server_info}

    async def _finish(self, message: dict[str, Any], error_code: int | None) -> None:
        data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
        if self.streaming:
            event = b"event: message\ndata: " + data + b"\n\n"
            await self.send({"type": "http.response.body", "body": event, "more_body": False})
            return
        status = 200 if error_code is None else ERROR_CODE_HTTP_STATUS.get(error_code, 200)
        headers = [*_JSON, (b"content-length", str(len(data)).encode())]
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": data, "more_body": False})


SessionRelayFactory = Callable[[PassThrough, _Request, str, Any, str, str, Send], "_Relay | None"]
"""Builds the relay of one call on a source's upstream session, or None when it must take the SDK path."""


class RelayError(MCPError):
    """A relayed call failed in transport. `sent` False: it never reached the upstream (a connect
    failure), so a retry is safe. True: it was sent and its outcome is unknown (the connection or the
    stream broke before the answer), so only an idempotent tool may be retried."""

    def __init__(self, code: int, message: str, *, sent: bool) -> None:
        super().__init__(code=code, message=message)
        self.sent = sent


def _outcome_unknown(source: str, what: str, cause: str) -> RelayError:
    return RelayError(
        code=types.INTERNAL_ERROR,
        message=f"source {source!r} failed after {what} was sent ({cause}): it may or may not have run; "
        "check its effects before retrying",
        sent=True,
    )


def _candidate_headers(scope: Scope) -> dict[bytes, bytes] | None:
    """The headers of a POST that may be a 2026-07-28 `tools/call`, else None (also for repeated routing headers)."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    found: dict[bytes, bytes] = {}
    for key, value in scope["headers"]:
        if key in _ROUTING and key in found:
            return None  # the SDK rejects a repeated routing header; let it
        found[key] = value
    if found.get(b"mcp-method") != b"tools/call" or b"mcp-name" not in found:
        return None
    version = found.get(b"mcp-protocol-version", b"").decode("latin-1")
    accept = found.get(b"accept", b"")
    both = b"application/json" in accept and b"text/event-stream" in accept
    if version not in MODERN_PROTOCOL_VERSIONS or not both:
        return None
    return found


def _parse(body: bytes, name: str, headers: dict[bytes, bytes], own_exchanges: bool = True) -> _Request | None:
    """The request if it is one well-formed 2026-07-28 `tools/call` of `name`, else None (the SDK judges it)."""
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(decoded, dict) or decoded.get("jsonrpc") != "2.0" or decoded.get("method") != "tools/call":
        return None
    request_id = decoded.get("id")
    params = decoded.get("params")
    if isinstance(request_id, bool) or not isinstance(request_id, int | str) or not isinstance(params, dict):
        return None
    meta = params.get("_meta")
    version = headers[b"mcp-protocol-version"].decode("latin-1")
    if params.get("name") != name or not isinstance(meta, dict):
        return None
    if meta.get(types.PROTOCOL_VERSION_META_KEY) != version or not isinstance(
        meta.get(types.CLIENT_CAPABILITIES_META_KEY), dict
    ):
        return None
    arguments = params.get("arguments")
    state = params.get("requestState")
    if (arguments is not None and not isinstance(arguments, dict)) or (
        own_exchanges and isinstance(state, str) and state.startswith(EXCHANGE_PREFIX)
    ):
        return None  # malformed, or a round of an exchange the adapter itself is bridging
    capabilities = meta[types.CLIENT_CAPABILITIES_META_KEY]
    back_channel = any(capabilities.get(key) is not None for key in BACK_CHANNEL_CAPABILITIES)
    return _Request(request_id, name, arguments, version, headers, body, back_channel)


def _upstream_headers(request: _Request, upstream: str) -> dict[str, str]:
    headers = {
        key.decode("latin-1"): value.decode("latin-1")
        for key, value in request.headers.items()
        if key in _FORWARDED or key.startswith(_PARAM_PREFIX)
    }
    headers["content-type"] = "application/json"
    headers["mcp-method"] = "tools/call"
    headers["mcp-name"] = encode_header_value(upstream)
    return headers


def _renamed(request: _Request, upstream: str) -> bytes:
    if upstream == request.name:
        return request.body
    decoded = json.loads(request.body)
    decoded["params"]["name"] = upstream
    return json.dumps(decoded, separators=(",", ":"), ensure_ascii=False).encode()


def _final_message(event: bytes) -> dict[str, Any] | None:
    """The JSON-RPC response an SSE event carries, or None for a notification, keepalive or other event."""
    data = b"\n".join(line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:"))
    if not data:
        return None
    try:
        message = json.loads(data)
    except ValueError:
        return None
    if isinstance(message, dict) and "id" in message and ("result" in message or "error" in message):
        return message
    return None


def _response_message(raw: bytes, source: str) -> dict[str, Any]:
    try:
        message = json.loads(raw)
    except ValueError:
        message = None
    if not isinstance(message, dict):
        raise MCPError(code=types.INTERNAL_ERROR, message=f"source {source!r} answered with a non-JSON-RPC body")
    return message


def _error_dict(exc: MCPError) -> dict[str, Any]:
    return exc.error.model_dump(by_alias=True, mode="json", exclude_none=True)


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The request body, or what was read of it (and False) once it passed `limit` or the client left."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > limit:
            return b"".join(chunks), False


def _replay(body: bytes, complete: bool, receive: Receive) -> Receive:
    """A `receive` that hands the SDK what was already read, then continues with the client's stream."""
    pending = True

    async def replaying() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": not complete}
        return await receive()

    return replaying


async def _cancel_on_disconnect(receive: Receive, answer: asyncio.Task[None]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    answer.cancel()
