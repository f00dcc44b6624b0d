"""Notifications for handshake-era sessions: the standalone GET stream, and `resources/subscribe`.

Upstream changes reach every replica on its own: each profile backend keeps one
long-lived upstream session per upstream, whose `subscriptions/listen` stream
(opened by the aggregation core) reports list changes. `SessionStreams` fans them
out to this replica's open GET streams of that profile:
`notifications/{tools,resources,prompts}/list_changed` to all of them,
`notifications/resources/updated` only to sessions that subscribed to the URI.
(2026-07-28 clients get the same events on `subscriptions/listen`, which the
profile's MCP server serves itself.)

A session's subscriptions (`resources/subscribe`/`unsubscribe`, answered by the
front) are published to every replica through the store, because the POST that
subscribes may land on another replica than the one holding the session's GET
stream. The replica holding the stream subscribes upstream for exactly as long
as the stream is open. Subscriptions live in replica memory (bounded): a replica
that restarts forgets them, and clients re-subscribe when they reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mcp.shared.exceptions import MCPError
from mcp_adapter.downstream import MODERN, NullDownstream
from starlette.responses import Response, StreamingResponse

from mcp_gateway.config import Profile
from mcp_gateway.sessions import SessionInfo

if TYPE_CHECKING:
    from mcp_gateway.runtime import Backend, Gateway

log = logging.getLogger("mcp_gateway.streams")

KEEPALIVE_SECONDS = 15.0
MAX_QUEUED = 256  # a client that stops reading loses its stream, not the gateway's memory
MAX_SESSIONS = 10_000
MAX_URIS_PER_SESSION = 256
LIST_CHANGED = {
    "tools": "notifications/tools/list_changed",
    "resources": "notifications/resources/list_changed",
    "prompts": "notifications/prompts/list_changed",
}
_SYNC = {"sync": True}  # queue marker: the session's subscriptions changed


@dataclass(eq=False)
class _Stream:
    session: str
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=lambda: asyncio.Queue(MAX_QUEUED))

    def push(self, message: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            log.warning("a session's notification stream is not being read; closing it")
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)


class SessionStreams:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._streams: dict[str, set[_Stream]] = {}  # profile id -> open streams on this replica
        self._subscriptions: OrderedDict[str, set[str]] = OrderedDict()  # session nonce -> URIs

    @property
    def open_streams(self) -> int:
        return sum(len(s) for s in self._streams.values())

    # -- fan-out of upstream events (called by every profile backend's aggregator) ---------

    def list_changed(self, profile_id: str, kind: str) -> None:
        method = LIST_CHANGED.get(kind)
        if method is None:
            return
        for stream in self._streams.get(profile_id, ()):
            stream.push({"jsonrpc": "2.0", "method": method})

    def notify_session(self, profile_id: str, session: str, message: dict[str, Any]) -> None:
        """One session's streams on this replica (discovery reveal: discovery/reveal.py)."""
        for stream in self._streams.get(profile_id, ()):
            if stream.session == session:
                stream.push(message)

    def resource_updated(self, profile_id: str, uri: str) -> None:
        message = {"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": uri}}
        for stream in self._streams.get(profile_id, ()):
            if uri in self._subscriptions.get(stream.session, ()):
                stream.push(message)

    # -- session subscriptions, replicated through the store -----------------------------

    async def change(self, info: SessionInfo, uri: str, subscribed: bool) -> None:
        payload = {"kind": "subscription", "session": info.nonce, "uri": uri, "on": subscribed}
        try:
            await self.gateway.store.publish(payload)  # every replica, this one included
        except Exception as exc:
            log.warning("subscription recorded on this replica only, the store is unreachable: %s", exc)
            self.on_published(payload)

    def on_published(self, payload: dict[str, Any]) -> None:
        session, uri = str(payload.get("session")), str(payload.get("uri"))
        uris = self._subscriptions.setdefault(session, set())
        self._subscriptions.move_to_end(session)
        if payload.get("on"):
            if len(uris) < MAX_URIS_PER_SESSION:
                uris.add(uri)
        else:
            uris.discard(uri)
        while len(self._subscriptions) > MAX_SESSIONS:
            self._subscriptions.popitem(last=False)
        for streams in self._streams.values():
            for stream in streams:
                if stream.session == session:
                    stream.push(_SYNC)

    def forget(self, session: str) -> None:
        """The session ended (DELETE)."""
        self._subscriptions.pop(session, None)

    # -- the GET stream ------------------------------------------------------------------

    def serve(self, info: SessionInfo, profile: Profile) -> Response:
        return StreamingResponse(
            self._events(info, profile),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"},
        )

    async def _events(self, info: SessionInfo, profile: Profile) -> AsyncIterator[str]:
        backend = await self.gateway.backends.get(profile)
        stream = _Stream(info.nonce)
        self._streams.setdefault(profile.id, set()).add(stream)
        upstream: set[str] = set()
        try:
            await self._sync(backend, stream.session, upstream)
            yield ": notifications for this session\n\n"
            while True:
                try:
                    message = await asyncio.wait_for(stream.queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if message is None:
                    return
                if message is _SYNC:
                    await self._sync(backend, stream.session, upstream)
                    continue
                yield f"event: message\ndata: {json.dumps(message)}\n\n"
        finally:
            self._streams.get(profile.id, set()).discard(stream)
            with contextlib.suppress(Exception):
                await asyncio.shield(self._unsubscribe_all(backend, upstream))

    async def _sync(self, backend: Backend, session: str, upstream: set[str]) -> None:
        """Hold upstream subscriptions for exactly the session's subscribed URIs."""
        aggregator = getattr(backend, "aggregator", None)
        if aggregator is None:
            return
        wanted = set(self._subscriptions.get(session, ()))
        for uri in sorted(wanted - upstream):
            try:
                await aggregator.subscribe(uri, NullDownstream("", MODERN))
                upstream.add(uri)
            except MCPError as exc:
                log.info("upstream subscription to %s not possible: %s", uri, exc.error.message)
        for uri in sorted(upstream - wanted):
            upstream.discard(uri)
            with contextlib.suppress(MCPError):
                await aggregator.unsubscribe(uri, NullDownstream("", MODERN))

    async def _unsubscribe_all(self, backend: Backend, upstream: set[str]) -> None:
        aggregator = getattr(backend, "aggregator", None)
        if aggregator is None:
            return
        for uri in list(upstream):
            with contextlib.suppress(MCPError):
                await aggregator.unsubscribe(uri, NullDownstream("", MODERN))
