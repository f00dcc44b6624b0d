"""The fast path for 2026-07-28 `tools/call` of sources that relay no bytes: stdio children,
handshake-era remote servers and `per-caller` sources.

Such a call cannot travel as bytes (passthrough.py): the upstream is a pipe, or it wants a
session of its own. On the SDK path each call still got a fresh server transport, dispatcher,
server session and an `Exchange` task before reaching the source's long-lived upstream session;
most of the adapter's CPU per call. Here the parsed call goes straight to that session
(`source.call_tool`, the very client request the SDK path sends, on the same stdio pipe or
pooled HTTP session, chosen by caller and era as there), and the answer is encoded once.

Taken only when the client declared none of sampling, elicitation and roots. Then the SDK
path's exchange has nothing to bridge: a server request during the call (or an
`input_required` answer asking for one) fails the call with -32021 and cancels the upstream
request, exactly as there. Progress (for a request that carries a `progressToken`) and log
messages (at or above the level the request opted in to, 2026-07-28's per-request logging) are
relayed as SSE events as they arrive. A client that drops its POST cancels the upstream request
(the session sends `notifications/cancelled`). The interceptor, policy, metrics and the
source's `timeoutSeconds` apply as on every relayed call.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import mcp_types as types
from mcp.shared.exceptions import MCPError
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.types import Send

from mcp_adapter.aggregate import ToolResult
from mcp_adapter.downstream import LEGACY, MODERN, missing_capability
from mcp_adapter.passthrough import BACK_CHANNEL_CAPABILITIES, CLIENT_ERA_HEADER, PassThrough, _Relay, _Request

_LEVELS: tuple[types.LoggingLevel, ...] = (
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
)


def relay_on_session(
    owner: PassThrough, request: _Request, upstream: str, source: Any, source_name: str, caller: str, send: Send
) -> _Relay | None:
    """The relay of this call on `source`'s upstream session, or None when the SDK path must serve it."""
    params = json.loads(request.body)["params"]
    meta = params["_meta"]
    capabilities = meta[types.CLIENT_CAPABILITIES_META_KEY]
    if any(capabilities.get(name) is not None for name in BACK_CHANNEL_CAPABILITIES):
        return None  # server requests may be answered: the SDK path's exchange bridges them
    if params.get("requestState") is not None or params.get("inputResponses") is not None or "task" in params:
        return None  # a later round, or a task-augmented call: the SDK path knows what to make of it
    try:
        call = types.CallToolRequestParams.model_validate({**params, "name": upstream})
    except ValueError:
        return None  # the SDK answers with its usual error
    relay = SessionRelay(owner, request, upstream, source_name, caller, send, source, call, meta)
    claimed = request.headers.get(CLIENT_ERA_HEADER, b"").decode("latin-1")
    if owner.trust_caller_header and claimed in HANDSHAKE_PROTOCOL_VERSIONS:
        relay.era = LEGACY  # a gateway relaying a handshake-era client: per-caller sources keep its era's session
    return relay


class SessionRelay(_Relay):
    """One call served on the source's upstream session (see the module doc)."""

    def __init__(
        self,
        owner: PassThrough,
        request: _Request,
        upstream: str,
        source_name: str,
        caller: str,
        send: Send,
        source: Any,
        call: types.CallToolRequestParams,
        meta: dict[str, Any],
    ) -> None:
        super().__init__(owner, request, upstream, None, source_name, caller, send)
        self.source_object = source
        self.call = call
        self.meta = meta  # the request's `_meta` as sent
        self.era = MODERN

    async def _exchange(self) -> ToolResult:
        downstream = _StreamingDownstream(self, self.meta)
        result: ToolResult | None = None
        with anyio.CancelScope() as scope:
            downstream.scope = scope
            result = await self.source_object.call_tool(self.call, downstream)
        if downstream.failure is not None:
            raise downstream.failure
        assert result is not None
        if isinstance(result, types.InputRequiredResult):
            for input_request in (result.input_requests or {}).values():
                refused = missing_capability(input_request, downstream.client_capabilities)
                if refused is not None:
                    raise refused
        return result

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        """Relay one notification to the client as an SSE event."""
        message = {"jsonrpc": "2.0", "method": method, "params": params}
        data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
        await self._stream(b"event: message\ndata: " + data + b"\n\n")


class _StreamingDownstream:
    """The client of a session-relayed call: it can answer no server request; progress and logs stream to it."""

    def __init__(self, relay: SessionRelay, meta: dict[str, Any]) -> None:
        self.relay = relay
        self.caller = relay.caller
        self.era = relay.era
        self._wire = dict(meta.get(types.CLIENT_CAPABILITIES_META_KEY) or {})
        self._progress_token = meta.get("progressToken")
        level = meta.get(types.LOG_LEVEL_META_KEY)
        self._min_level = _LEVELS.index(level) if level in _LEVELS else None
        self.failure: MCPError | None = None
        self.scope: anyio.CancelScope | None = None

    @property
    def client_capabilities(self) -> types.ClientCapabilities | None:
        return types.ClientCapabilities.model_validate(self._wire)

    def wire_capabilities(self) -> dict[str, Any] | None:
        return self._wire

    async def server_request(self, request: types.InputRequest) -> types.InputResponse | types.ErrorData:
        refused = missing_capability(request, self.client_capabilities)
        if refused is None:  # cannot happen without a declared capability; refuse all the same
            refused = MCPError(code=types.INTERNAL_ERROR, message=f"{request.method} cannot be relayed on this call")
        # Fail the client's request (not just the upstream's server request) and stop the upstream call.
        self.failure = refused
        if self.scope is not None:
            self.scope.cancel()
        return refused.error

    async def progress(self, progress: float, total: float | None, message: str | None) -> None:
        if self._progress_token is None:
            return
        params: dict[str, Any] = {"progressToken": self._progress_token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        await self.relay.notify("notifications/progress", params)

    async def log(self, params: types.LoggingMessageNotificationParams) -> None:
        if self._min_level is None or _LEVELS.index(params.level) < self._min_level:
            return  # 2026-07-28: logging is a per-request opt-in, at a level
        dumped = params.model_dump(by_alias=True, mode="json", exclude_none=True)
        await self.relay.notify("notifications/message", dumped)


__all__ = ["SessionRelay", "relay_on_session"]
