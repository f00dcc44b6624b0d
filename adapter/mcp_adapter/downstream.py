"""The client side of one in-flight request, as seen by an upstream source.

An upstream that logs, reports progress, or asks its client for sampling,
elicitation or roots while serving a request must reach exactly the client
whose request caused it, in that client's protocol era:

- `LegacyDownstream`: the client speaks a handshake revision; its request has
  a back-channel (the POST's SSE stream), so server requests are sent on it.
- `Exchange` (2026-07-28 clients): no back-channel exists. The upstream call
  runs in a background task; each server request it makes surfaces to the
  client as an `InputRequiredResult` round whose `requestState` names the
  exchange, and the client's retry (carrying `inputResponses`) resumes it.

Both implement `Downstream`, the only thing sources see. A downstream also
carries the client's era (so a source can pick an upstream session of the same
era) and its declared capabilities: an upstream asking for something the
client never declared fails the client's request with -32021
(MissingRequiredClientCapability) and is cancelled, as the spec requires of a
server, instead of relaying a request the client cannot answer.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import mcp_types as types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata

logger = logging.getLogger(__name__)

EXCHANGE_PREFIX = "mcpa-x1."
"""`requestState` values minted by the adapter start with this; others belong to an upstream."""

_RESULT_FOR: dict[str, Any] = {
    "sampling/createMessage": types.CreateMessageResult,
    "elicitation/create": types.ElicitResult,
    "roots/list": types.ListRootsResult,
}


LEGACY = "legacy"
MODERN = "modern"


def missing_capability(request: types.InputRequest, caps: types.ClientCapabilities | None) -> MCPError | None:
    """The -32021 error for an input request the client's declared capabilities do not cover, else None."""
    params = request.params
    required: types.ClientCapabilities | None = None
    if isinstance(request, types.ElicitRequest):
        elicitation = caps.elicitation if caps is not None else None
        if isinstance(params, types.ElicitRequestURLParams):
            if elicitation is None or elicitation.url is None:
                required = types.ClientCapabilities(
                    elicitation=types.ElicitationCapability(url=types.UrlElicitationCapability())
                )
        elif elicitation is None or (elicitation.form is None and elicitation.url is not None):
            required = types.ClientCapabilities(
                elicitation=types.ElicitationCapability(form=types.FormElicitationCapability())
            )
    elif isinstance(request, types.CreateMessageRequest):
        sampling = caps.sampling if caps is not None else None
        wants_tools = isinstance(params, types.CreateMessageRequestParams) and bool(params.tools)
        if sampling is None or (wants_tools and sampling.tools is None):
            tools = types.SamplingToolsCapability() if wants_tools else None
            required = types.ClientCapabilities(sampling=types.SamplingCapability(tools=tools))
    elif caps is None or caps.roots is None:
        required = types.ClientCapabilities(roots=types.RootsCapability())
    if required is None:
        return None
    data = types.MissingRequiredClientCapabilityErrorData(required_capabilities=required)
    return MCPError(
        code=types.MISSING_REQUIRED_CLIENT_CAPABILITY,
        message=f"the upstream server needs the client to support {request.method}, "
        "but the client did not declare that capability",
        data=data.model_dump(by_alias=True, mode="json", exclude_none=True),
    )


def _wire_capabilities(ctx: ServerRequestContext[Any, Any]) -> dict[str, Any]:
    """A 2026-07-28 request's declared capabilities as sent (no re-encoding); else the session's, encoded."""
    raw = (ctx.meta or {}).get(types.CLIENT_CAPABILITIES_META_KEY)
    if isinstance(raw, dict):
        return raw
    caps = ctx.session.client_capabilities or types.ClientCapabilities()
    return caps.model_dump(by_alias=True, mode="json", exclude_none=True)


def answer_type(request: types.InputRequest) -> Any:
    """The result model a client's answer to `request` must fit."""
    params = request.params
    if isinstance(params, types.CreateMessageRequestParams) and params.tools:
        return types.CreateMessageResultWithTools
    return _RESULT_FOR[request.method]


class Downstream(Protocol):
    caller: str
    era: str
    """`LEGACY` or `MODERN`: which protocol era the client speaks."""

    @property
    def client_capabilities(self) -> types.ClientCapabilities | None: ...

    def wire_capabilities(self) -> dict[str, Any] | None:
        """The client's capabilities in wire form, to declare on its behalf to a 2026-07-28 upstream."""
        ...

    async def server_request(self, request: types.InputRequest) -> types.InputResponse | types.ErrorData: ...

    async def progress(self, progress: float, total: float | None, message: str | None) -> None: ...

    async def log(self, params: types.LoggingMessageNotificationParams) -> None: ...


class NullDownstream:
    """For work no client request caused (catalog refreshes, probes)."""

    client_capabilities: types.ClientCapabilities | None = None

    def __init__(self, caller: str = "", era: str = MODERN) -> None:
        self.caller = caller
        self.era = era

    def wire_capabilities(self) -> dict[str, Any] | None:
        return None

    async def server_request(self, request: types.InputRequest) -> types.InputResponse | types.ErrorData:
        return types.ErrorData(code=types.INVALID_REQUEST, message="no client request is in flight to answer this")

    async def progress(self, progress: float, total: float | None, message: str | None) -> None:
        return None

    async def log(self, params: types.LoggingMessageNotificationParams) -> None:
        return None


class _ClientRequest:
    """What a downstream backed by a live client request (`self.ctx`) knows about that client."""

    ctx: ServerRequestContext[Any, Any]

    @property
    def client_capabilities(self) -> types.ClientCapabilities | None:
        return self.ctx.session.client_capabilities or types.ClientCapabilities()

    def wire_capabilities(self) -> dict[str, Any] | None:
        return _wire_capabilities(self.ctx)


class LegacyDownstream(_ClientRequest):
    """A handshake-era client request, answered over its own response stream."""

    era = LEGACY

    def __init__(self, ctx: ServerRequestContext[Any, Any], caller: str) -> None:
        self.ctx = ctx
        self.caller = caller
        self.failure: MCPError | None = None
        self.scope: anyio.CancelScope | None = None

    async def server_request(self, request: types.InputRequest) -> types.InputResponse | types.ErrorData:
        refused = missing_capability(request, self.client_capabilities)
        if refused is not None:
            # Fail the client's request (not just the upstream's server request) and stop the upstream call.
            self.failure = refused
            if self.scope is not None:
                self.scope.cancel()
            return refused.error
        result_type = answer_type(request)
        try:
            return await self.ctx.session.send_request(
                request,
                result_type,
                metadata=ServerMessageMetadata(related_request_id=self.ctx.request_id),
            )
        except MCPError as exc:
            return exc.error
        except Exception as exc:
            logger.warning("relaying %s to the client failed: %s", request.method, exc)
            return types.ErrorData(code=types.INTERNAL_ERROR, message=f"the client could not answer {request.method}")

    async def progress(self, progress: float, total: float | None, message: str | None) -> None:
        await self.ctx.session.report_progress(progress, total, message)

    async def log(self, params: types.LoggingMessageNotificationParams) -> None:
        await self.ctx.session.send_notification(
            types.LoggingMessageNotification(params=params), related_request_id=self.ctx.request_id
        )


@dataclass
class _Event:
    kind: str  # "input" | "done"
    key: str = ""
    request: types.InputRequest | None = None
    result: Any = None
    error: BaseException | None = None


@dataclass
class Exchange(_ClientRequest):
    """One 2026-07-28 client request bridged to an upstream that uses server requests."""

    caller: str
    ctx: ServerRequestContext[Any, Any]
    token: str = field(default_factory=lambda: EXCHANGE_PREFIX + secrets.token_urlsafe(24))
    answer_timeout: float = 300.0
    _events_send: MemoryObjectSendStream[_Event] = field(init=False)
    _events: MemoryObjectReceiveStream[_Event] = field(init=False)
    _waiting: dict[str, anyio.Event] = field(default_factory=dict)
    _answers: dict[str, types.InputResponse | types.ErrorData] = field(default_factory=dict)
    _counter: int = 0
    _scope: anyio.CancelScope | None = None
    finished: bool = False
    era: str = MODERN

    def __post_init__(self) -> None:
        self._events_send, self._events = anyio.create_memory_object_stream[_Event](16)

    async def server_request(self, request: types.InputRequest) -> types.InputResponse | types.ErrorData:
        refused = missing_capability(request, self.client_capabilities)
        if refused is not None:
            await self._finish(_Event("done", error=refused))
            return refused.error
        self._counter += 1
        key = f"r{self._counter}"
        answered = anyio.Event()
        self._waiting[key] = answered
        await self._events_send.send(_Event("input", key=key, request=request))
        with anyio.move_on_after(self.answer_timeout):
            await answered.wait()
        self._waiting.pop(key, None)
        return self._answers.pop(
            key, types.ErrorData(code=types.REQUEST_TIMEOUT, message="the client did not answer the input request")
        )

    async def progress(self, progress: float, total: float | None, message: str | None) -> None:
        # The retry's stream carries progress; the dispatch context stamps the token.
        try:
            await self.ctx.session.report_progress(progress, total, message)
        except Exception:
            logger.debug("progress for a finished round dropped")

    async def log(self, params: types.LoggingMessageNotificationParams) -> None:
        try:
            await self.ctx.session.send_log_message(params.level, params.data, params.logger)
        except Exception:
            logger.debug("log for a finished round dropped")

    def answer(self, responses: dict[str, Any]) -> None:
        for key, response in responses.items():
            if key in self._waiting:
                self._answers[key] = response
                self._waiting[key].set()

    async def run(self, work: Callable[[], Awaitable[Any]]) -> None:
        """Run the upstream call, reporting its outcome as the final event."""
        event: _Event | None = None
        with anyio.CancelScope() as self._scope:
            try:
                event = _Event("done", result=await work())
            except Exception as exc:
                event = _Event("done", error=exc)
        if event is not None:
            await self._finish(event)

    async def _finish(self, event: _Event) -> None:
        """Report the outcome once; a refused input request also stops the upstream call."""
        if self.finished:
            return
        self.finished = True
        self.cancel()
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.WouldBlock):
            self._events_send.send_nowait(event)

    def cancel(self) -> None:
        """Stop the upstream call (the client went away or its request failed)."""
        if self._scope is not None:
            self._scope.cancel()

    async def next_round(self, within: float) -> Any:
        """The final result, or an `InputRequiredResult` asking the client for more input."""
        with anyio.fail_after(within):
            event = await self._events.receive()
        if event.kind == "done":
            if event.error is not None:
                raise event.error
            return event.result
        assert event.request is not None
        return types.InputRequiredResult(input_requests={event.key: event.request}, request_state=self.token)

    def close(self) -> None:
        self._events_send.close()
        self._events.close()
