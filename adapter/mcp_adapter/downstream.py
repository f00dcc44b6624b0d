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

Both implement `Downstream`, the only thing sources see.
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


class Downstream(Protocol):
    caller: str

    async def server_request(self, request: types.InputRequest) -> types.InputResponse | types.ErrorData: ...

    async def progress(self, progress: float, total: float | None, message: str | None) -> None: ...

    async def log(self, params: types.LoggingMessageNotificationParams) -> None: ...


class NullDownstream:
    """For work no client request caused (catalog refreshes, probes)."""

    def __init__(self, caller: str = "") -> None:
        self.caller = caller

    async def server_request(self, request: types.InputRequest) -> types.InputResponse | types.ErrorData:
        return types.ErrorData(code=types.INVALID_REQUEST, message="no client request is in flight to answer this")

    async def progress(self, progress: float, total: float | None, message: str | None) -> None:
        return None

    async def log(self, params: types.LoggingMessageNotificationParams) -> None:
        return None


class LegacyDownstream:
    """A handshake-era client request, answered over its own response stream."""

    def __init__(self, ctx: ServerRequestContext[Any, Any], caller: str) -> None:
        self.ctx = ctx
        self.caller = caller

    async def server_request(self, request: types.InputRequest) -> types.InputResponse | types.ErrorData:
        result_type = _RESULT_FOR[request.method]
        params = request.params
        if isinstance(params, types.CreateMessageRequestParams) and params.tools:
            result_type = types.CreateMessageResultWithTools
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
class Exchange:
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
    finished: bool = False

    def __post_init__(self) -> None:
        self._events_send, self._events = anyio.create_memory_object_stream[_Event](16)

    async def server_request(self, request: types.InputRequest) -> types.InputResponse | types.ErrorData:
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
        try:
            result = await work()
            event = _Event("done", result=result)
        except Exception as exc:
            event = _Event("done", error=exc)
        self.finished = True
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await self._events_send.send(event)

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
