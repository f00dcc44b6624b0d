"""One supervised client session to an upstream MCP server (stdio child or remote HTTP).

`UpstreamSession.run()` lives in a task: it connects (negotiating the era per
the source's `protocol` setting), serves requests until the connection dies,
then reconnects with exponential backoff. `request()` runs one operation on the
live `ClientSession`, failing fast with a clear MCP error while the upstream is
down instead of hanging.

Negotiation: `auto` probes `server/discover` and falls back to `initialize`;
`legacy-first` (used to serve handshake-era clients of an `auto` source) tries
`initialize` first and falls back to discovery for modern-only servers.

On a 2026-07-28 session the client's declared capabilities and log level are
forwarded per request (the upstream then refuses or stays quiet exactly as it
would for that client), list changes and resource updates arrive through
`subscriptions/listen` streams, and resource subscriptions are re-established
after a reconnect in either era.

Server-to-client traffic the upstream produces while serving (sampling,
elicitation, roots, log messages) goes to the `Downstream` of the most recent
request in flight on this session. A per-caller session only ever carries one
caller's requests, so that is exact; on a `shared` session with concurrent
callers the upstream wire carries no correlation, which is why stateful
servers should use `scope: per-caller`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import anyio.abc
import mcp_types as types
from mcp.client._probe import negotiate_auto
from mcp.client.session import ClientRequestContext, ClientSession
from mcp.client.subscriptions import listen
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import (
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
    ToolsListChanged,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcp_adapter.downstream import Downstream, NullDownstream
from mcp_adapter.metrics import METRICS

logger = logging.getLogger(__name__)

T = TypeVar("T")

UNAVAILABLE = -32002
"""Error code for "source temporarily unavailable" (server-defined range)."""

Streams = tuple[Any, Any, anyio.Event | None]
Opener = Callable[[], AbstractAsyncContextManager[Streams]]
NotificationHook = Callable[["UpstreamSession", types.ServerNotification], Awaitable[None]]

FORWARDED_CAPABILITIES: ContextVar[dict[str, Any] | None] = ContextVar("mcp_adapter_client_caps", default=None)
"""The downstream client's capabilities (wire form) for the upstream request being sent from this context."""


def _forward_client_capabilities(session: ClientSession) -> None:
    """Make a 2026-07-28 session declare, per request, the capabilities of the client it is serving.

    The SDK stamps its own (fixed) capabilities into every request's `_meta`;
    an upstream must see the end client's instead, or it would ask a client
    for sampling or elicitation that client never declared.
    """
    stamp = session._stamp

    def forwarding(data: dict[str, Any], opts: Any) -> None:
        stamp(data, opts)
        caps = FORWARDED_CAPABILITIES.get()
        if caps is not None and data.get("method") != "server/discover":
            data.setdefault("params", {}).setdefault("_meta", {})[types.CLIENT_CAPABILITIES_META_KEY] = caps

    session._stamp = forwarding


def _as_notification(event: ServerEvent) -> types.ServerNotification | None:
    """A listen-stream event as the handshake-era notification the rest of the adapter handles."""
    if isinstance(event, ToolsListChanged):
        return types.ToolListChangedNotification()
    if isinstance(event, PromptsListChanged):
        return types.PromptListChangedNotification()
    if isinstance(event, ResourcesListChanged):
        return types.ResourceListChangedNotification()
    if isinstance(event, ResourceUpdated):
        return types.ResourceUpdatedNotification(params=types.ResourceUpdatedNotificationParams(uri=event.uri))
    return None


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
        era: str = "",
        watch_catalog: bool = False,
    ) -> None:
        self.source = source
        self.caller = caller
        self.era = era
        self.watch_catalog = watch_catalog
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
        self.subscriptions: dict[str, int] = {}
        self._listens: dict[str, anyio.CancelScope] = {}
        self._tg: anyio.abc.TaskGroup | None = None
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
                if session.protocol_version in MODERN_PROTOCOL_VERSIONS:
                    _forward_client_capabilities(session)
                logger.info(
                    "upstream connected",
                    extra={"source": self.source, "protocol_version": session.protocol_version, "caller": self.caller},
                )
                try:
                    async with anyio.create_task_group() as tg:
                        self._tg = tg
                        if died is not None:
                            tg.start_soon(_set_when, died, self._stop_or_died(tg))
                        await self._resume(session)
                        self.session = session
                        self.ever_connected = True
                        self.last_error = None
                        self._backoff.reset()
                        self.connected.set()
                        await self._stop.wait()
                        tg.cancel_scope.cancel()
                finally:
                    self._tg = None
                    self._listens.clear()
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
        elif self._protocol == "legacy-first":
            try:
                await session.initialize()
            except MCPError:
                await negotiate_auto(session)  # a modern-only server
        elif self._protocol == "auto":
            await negotiate_auto(session)
        else:
            await session.discover()

    @property
    def modern(self) -> bool:
        return self.session is not None and self.session.protocol_version in MODERN_PROTOCOL_VERSIONS

    async def _resume(self, session: ClientSession) -> None:
        """After (re)connecting: watch the catalog, and restore this session's resource subscriptions."""
        modern = session.protocol_version in MODERN_PROTOCOL_VERSIONS
        if modern and self.watch_catalog:
            caps = session.server_capabilities or types.ServerCapabilities()
            kinds = {
                "tools_list_changed": bool(caps.tools and caps.tools.list_changed),
                "prompts_list_changed": bool(caps.prompts and caps.prompts.list_changed),
                "resources_list_changed": bool(caps.resources and caps.resources.list_changed),
            }
            if any(kinds.values()):
                self._start_listen(session, "", kinds)
        for uri in self.subscriptions:
            if modern:
                self._start_listen(session, uri, {})
            else:
                with contextlib.suppress(MCPError):
                    await session.subscribe_resource(uri)

    def _start_listen(self, session: ClientSession, uri: str, kinds: dict[str, bool]) -> None:
        assert self._tg is not None
        scope = anyio.CancelScope()
        self._listens[uri] = scope
        self._tg.start_soon(self._listen, session, scope, uri, kinds)

    async def _listen(self, session: ClientSession, scope: anyio.CancelScope, uri: str, kinds: dict[str, bool]) -> None:
        """One upstream `subscriptions/listen` stream, its events fed to the notification hook."""
        with scope:
            try:
                async with listen(
                    session,
                    tools_list_changed=kinds.get("tools_list_changed", False),
                    prompts_list_changed=kinds.get("prompts_list_changed", False),
                    resources_list_changed=kinds.get("resources_list_changed", False),
                    resource_subscriptions=[uri] if uri else (),
                ) as stream:
                    async for event in stream:
                        notification = _as_notification(event)
                        if notification is not None:
                            await self._message(notification)
            except Exception as exc:
                logger.warning("upstream listen stream ended: %s", _describe(exc), extra={"source": self.source})

    async def subscribe(self, uri: str) -> None:
        """Count one more subscriber of `uri`; the first one subscribes upstream (by era)."""
        count = self.subscriptions.get(uri, 0)
        if count == 0:
            session = await self._wait_connected()
            if session.protocol_version in MODERN_PROTOCOL_VERSIONS:
                self._start_listen(session, uri, {})
            else:
                await self.request(lambda s: s.subscribe_resource(uri), what="resources/subscribe")
        self.subscriptions[uri] = count + 1

    async def unsubscribe(self, uri: str) -> None:
        count = self.subscriptions.get(uri, 0)
        if count > 1:
            self.subscriptions[uri] = count - 1
            return
        self.subscriptions.pop(uri, None)
        scope = self._listens.pop(uri, None)
        if scope is not None:
            scope.cancel()
        elif count == 1 and self.session is not None:
            await self.request(lambda s: s.unsubscribe_resource(uri), what="resources/unsubscribe")

    async def close(self) -> None:
        self._stop.set()
        with anyio.move_on_after(15, shield=True):
            await self._stopped.wait()

    # -- requests ----------------------------------------------------------

    async def request(
        self, op: Callable[[ClientSession], Awaitable[T]], downstream: Downstream | None = None, what: str = ""
    ) -> T:
        """Run `op` on the live session; MCP errors, never hangs, while the upstream is down."""
        target = downstream or NullDownstream(self.caller)
        # Busy from before the wait for a connection: a per-caller session still starting its
        # child must not look idle to the pool's eviction and be closed under the waiting call.
        self.inflight.append(target)
        self.last_used = time.monotonic()
        token = None
        try:
            session = await self._wait_connected()
            modern = session.protocol_version in MODERN_PROTOCOL_VERSIONS
            token = FORWARDED_CAPABILITIES.set(target.wire_capabilities() if modern else None)
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
            if token is not None:
                FORWARDED_CAPABILITIES.reset(token)
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
