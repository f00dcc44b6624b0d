"""One supervised client session to an upstream MCP server (stdio child or remote HTTP).

`UpstreamSession.run()` lives in a task: it connects (negotiating the era per
the source's `protocol` setting), serves requests until the connection dies,
then reconnects with exponential backoff. `request()` runs one operation on the
live `ClientSession`, failing fast with a clear MCP error while the upstream is
down instead of hanging.

Server-to-client traffic the upstream produces while serving (sampling,
elicitation, roots, log messages) goes to the `Downstream` of the most recent
request in flight on this session. A per-caller session only ever carries one
caller's requests, so that is exact; on a `shared` session with concurrent
callers the upstream wire carries no correlation, which is why stateful
servers should use `scope: per-caller`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import mcp_types as types
from mcp.client._probe import negotiate_auto
from mcp.client.session import ClientRequestContext, ClientSession
from mcp.shared.exceptions import MCPError

from mcp_adapter.downstream import Downstream, NullDownstream
from mcp_adapter.metrics import METRICS

logger = logging.getLogger(__name__)

T = TypeVar("T")

UNAVAILABLE = -32002
"""Error code for "source temporarily unavailable" (server-defined range)."""

Streams = tuple[Any, Any, anyio.Event | None]
Opener = Callable[[], AbstractAsyncContextManager[Streams]]
NotificationHook = Callable[["UpstreamSession", types.ServerNotification], Awaitable[None]]


@dataclass
class Backoff:
    initial: float
    maximum: float
    current: float = 0.0

    def next(self) -> float:
        self.current = self.initial if self.current == 0 else min(self.current * 2, self.maximum)
        return self.current

    def reset(self) -> None:
        self.current = 0.0


class UpstreamSession:
    def __init__(
        self,
        source: str,
        opener: Opener,
        *,
        kind: str,
        protocol: str,
        connect_timeout: float,
        call_timeout: float,
        backoff: Backoff,
        on_notification: NotificationHook,
        caller: str = "",
    ) -> None:
        self.source = source
        self.caller = caller
        self.kind = kind
        self._opener = opener
        self._protocol = protocol
        self._connect_timeout = connect_timeout
        self._call_timeout = call_timeout
        self._backoff = backoff
        self._on_notification = on_notification
        self.session: ClientSession | None = None
        self.connected = anyio.Event()
        self.ever_connected = False
        self.last_error: str | None = None
        self.inflight: list[Downstream] = []
        self.last_used = time.monotonic()
        self._stop = anyio.Event()
        self._stopped = anyio.Event()

    # -- lifecycle ---------------------------------------------------------

    async def run(self) -> None:
        """Connect, serve until the connection dies, reconnect with backoff; until `close()`."""
        try:
            while not self._stop.is_set():
                try:
                    await self._serve_once()
                except Exception as exc:
                    self.last_error = _describe(exc)
                    logger.warning("upstream session ended: %s", self.last_error, extra={"source": self.source})
                if self._stop.is_set():
                    break
                delay = self._backoff.next()
                if self.kind == "stdio":
                    METRICS.child_restarts.labels(source=self.source).inc()
                logger.info("reconnecting in %.1fs", delay, extra={"source": self.source})
                with anyio.move_on_after(delay):
                    await self._stop.wait()
        finally:
            self._stopped.set()

    async def _serve_once(self) -> None:
        async with self._opener() as (read, write, died):
            session = ClientSession(
                read,
                write,
                sampling_callback=self._sampling,  # type: ignore[arg-type]
                elicitation_callback=self._elicitation,  # type: ignore[arg-type]
                list_roots_callback=self._roots,  # type: ignore[arg-type]
                logging_callback=self._logging,
                message_handler=self._message,
                client_info=types.Implementation(name="mcp-adapter", version="0.1.0"),
            )
            async with session:
                with anyio.fail_after(self._connect_timeout):
                    await self._negotiate(session)
                self.session = session
                self.ever_connected = True
                self.last_error = None
                self._backoff.reset()
                self.connected.set()
                logger.info(
                    "upstream connected",
                    extra={"source": self.source, "protocol_version": session.protocol_version, "caller": self.caller},
                )
                try:
                    async with anyio.create_task_group() as tg:
                        if died is not None:
                            tg.start_soon(_set_when, died, self._stop_or_died(tg))
                        await self._stop.wait()
                        tg.cancel_scope.cancel()
                finally:
                    self.connected = anyio.Event()
                    self.session = None
            if died is not None and died.is_set():
                self.last_error = "the server process exited"
                raise RuntimeError(self.last_error)

    def _stop_or_died(self, tg: Any) -> Callable[[], None]:
        def cancel() -> None:
            tg.cancel_scope.cancel()

        return cancel

    async def _negotiate(self, session: ClientSession) -> None:
        if self._protocol == "legacy":
            await session.initialize()
        elif self._protocol == "auto":
            await negotiate_auto(session)
        else:
            await session.discover()

    async def close(self) -> None:
        self._stop.set()
        with anyio.move_on_after(15, shield=True):
            await self._stopped.wait()

    # -- requests ----------------------------------------------------------

    async def request(
        self, op: Callable[[ClientSession], Awaitable[T]], downstream: Downstream | None = None, what: str = ""
    ) -> T:
        """Run `op` on the live session; MCP errors, never hangs, while the upstream is down."""
        session = await self._wait_connected()
        target = downstream or NullDownstream(self.caller)
        self.inflight.append(target)
        self.last_used = time.monotonic()
        try:
            with anyio.fail_after(self._call_timeout):
                return await op(session)
        except TimeoutError:
            raise MCPError(
                code=types.REQUEST_TIMEOUT,
                message=f"source {self.source!r} did not answer {what or 'the request'} "
                f"within {self._call_timeout:g}s (timeoutSeconds)",
            ) from None
        except MCPError as exc:
            if exc.code == types.CONNECTION_CLOSED:
                raise MCPError(
                    code=UNAVAILABLE,
                    message=f"source {self.source!r} closed the connection while handling {what or 'the request'} "
                    "(the server crashed or exited); it is being restarted - retry shortly",
                ) from None
            raise
        finally:
            self.inflight.remove(target)
            self.last_used = time.monotonic()

    async def _wait_connected(self) -> ClientSession:
        wait = min(self._connect_timeout, self._call_timeout) if self.ever_connected else self._connect_timeout
        with anyio.move_on_after(wait):
            await self.connected.wait()
        if self.session is None:
            detail = f": {self.last_error}" if self.last_error else ""
            raise MCPError(
                code=UNAVAILABLE,
                message=f"source {self.source!r} is not connected{detail}; the adapter keeps retrying - try again",
            )
        return self.session

    @property
    def busy(self) -> int:
        return len(self.inflight)

    # -- server-to-client traffic ------------------------------------------

    def _target(self) -> Downstream:
        return self.inflight[-1] if self.inflight else NullDownstream(self.caller)

    async def _sampling(
        self, ctx: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData:
        answer = await self._target().server_request(types.CreateMessageRequest(params=params))
        assert isinstance(answer, types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData)
        return answer

    async def _elicitation(
        self, ctx: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        answer = await self._target().server_request(types.ElicitRequest(params=params))
        assert isinstance(answer, types.ElicitResult | types.ErrorData)
        return answer

    async def _roots(self, ctx: ClientRequestContext) -> types.ListRootsResult | types.ErrorData:
        answer = await self._target().server_request(types.ListRootsRequest())
        assert isinstance(answer, types.ListRootsResult | types.ErrorData)
        return answer

    async def _logging(self, params: types.LoggingMessageNotificationParams) -> None:
        if self.inflight:
            await self.inflight[-1].log(params)

    async def _message(self, message: Any) -> None:
        if isinstance(message, Exception):
            logger.warning("upstream transport error: %s", _describe(message), extra={"source": self.source})
            return
        try:
            await self._on_notification(self, message)
        except Exception:
            logger.exception("handling an upstream notification failed", extra={"source": self.source})


async def _set_when(event: anyio.Event, then: Callable[[], None]) -> None:
    await event.wait()
    then()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, MCPError):
        return f"MCP error {exc.code}: {exc.error.message}"
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    if isinstance(exc, TimeoutError):
        return "timed out connecting"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
