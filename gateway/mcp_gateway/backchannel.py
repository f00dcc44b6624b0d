"""Server-to-client requests for handshake-era clients, on any replica.

A handshake-era client's POST gets an SSE response stream; while its request
is served, the profile's MCP server may ask the client something
(sampling, elicitation, roots: e.g. when an upstream answers with an
`InputRequiredResult`, the aggregation core asks the client and resumes the
upstream call with `inputResponses`/`requestState`). The question goes out on
that stream; the client POSTs its answer as a separate HTTP request, which a
load balancer may send to *another* replica.

So every server-to-client request id names its way home:
`gwr1.<replica>.<channel>.<n>`: the replica holding the open stream and the
channel (one per POST in flight) waiting for the answer. The front hands an
answer to `Relay.answer`: delivered in-process when the replica is this one,
else published through the store (PostgreSQL LISTEN/NOTIFY) to the replica
that holds the stream. Without a database there is one replica, so a foreign
replica id means that replica is gone and the answer is dropped (the waiting
request, if any, went with it). An answer is accepted only from the session
that was asked.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
import anyio.abc
from mcp.server.connection import Connection
from mcp.server.lowlevel.server import Server
from mcp.server.runner import serve_connection
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
from mcp.shared.message import MessageMetadata
from mcp.shared.transport_context import TransportContext
from mcp_types import RequestId
from starlette.types import Message, Receive, Scope, Send

from mcp_gateway.sessions import SessionInfo

log = logging.getLogger("mcp_gateway.backchannel")

ROUTE_PREFIX = "gwr1"
Publish = Callable[[dict[str, Any]], Any]
Deliver = Callable[[dict[str, Any]], Awaitable[None]]


class RoutedDispatcher(JSONRPCDispatcher[TransportContext]):
    """A dispatcher whose outbound request ids carry the route back to it."""

    def __init__(self, *args: Any, route: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._route = route

    def _allocate_id(self) -> RequestId:  # type: ignore[override]
        self._next_id += 1
        return f"{self._route}.{self._next_id}"


def _no_back_channel(_: MessageMetadata) -> TransportContext:
    return TransportContext(kind="streamable-http", can_send_request=False)


@dataclass
class _Channel:
    deliver: Deliver  # hands a client's answer to the request waiting for it
    session: str


def parse_route(request_id: Any) -> tuple[str, str] | None:
    """(replica, channel) of a gateway-minted server request id, else None."""
    if not isinstance(request_id, str):
        return None
    parts = request_id.split(".")
    if len(parts) != 4 or parts[0] != ROUTE_PREFIX:
        return None
    return parts[1], parts[2]


async def inject(transport: StreamableHTTPServerTransport, message: dict[str, Any]) -> None:
    """Hand a client's answer to the transport as if it had been POSTed to it."""
    body = json.dumps(message).encode()
    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": "/mcp",
        "query_string": b"",
        "headers": [(b"accept", b"application/json, text/event-stream"), (b"content-type", b"application/json")],
    }
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if delivered:
            await anyio.sleep_forever()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(_: Message) -> None:
        return None

    await transport.handle_request(scope, receive, send)


class Relay:
    """Open back-channels of this replica, and delivery of answers to any replica's."""

    def __init__(self, publish: Publish | None = None) -> None:
        self.replica = secrets.token_hex(6)
        self.publish = publish
        self._channels: dict[str, _Channel] = {}

    def open(self, session: str, transport: StreamableHTTPServerTransport) -> str:
        """A channel whose answers go into an SDK-path transport, as if POSTed to it."""
        return self.open_inbox(session, partial(inject, transport))

    def open_inbox(self, session: str, deliver: Deliver) -> str:
        """A channel whose answers go to `deliver` (the handshake fast path's rounds, handshake_relay.py)."""
        channel = secrets.token_hex(8)
        self._channels[channel] = _Channel(deliver, session)
        return f"{ROUTE_PREFIX}.{self.replica}.{channel}"

    def close(self, route: str) -> None:
        self._channels.pop(route.rsplit(".", 1)[-1], None)

    @property
    def open_channels(self) -> int:
        return len(self._channels)

    async def answer(self, session: str, message: dict[str, Any]) -> bool:
        """Route a client's answer; False when it names no gateway back-channel."""
        route = parse_route(message.get("id"))
        if route is None:
            return False
        replica, channel = route
        if replica == self.replica:
            await self.deliver(channel, session, message)
        elif self.publish is not None:
            await self.publish(
                {"kind": "answer", "replica": replica, "channel": channel, "session": session, "message": message}
            )
        else:
            log.info("dropped an answer for replica %s: without a database there is no other replica", replica)
        return True

    async def deliver(self, channel: str, session: str, message: dict[str, Any]) -> None:
        found = self._channels.get(channel)
        if found is None:
            log.info("dropped a late answer: its request already finished")
            return
        if found.session != session:
            log.warning("dropped an answer from a session that was not asked")
            return
        await found.deliver(message)

    async def on_published(self, payload: dict[str, Any]) -> None:
        """A message another replica published: deliver it if it is ours."""
        if payload.get("kind") != "answer" or payload.get("replica") != self.replica:
            return
        message = payload.get("message")
        if isinstance(message, dict):
            await self.deliver(str(payload.get("channel")), str(payload.get("session")), message)


async def serve_handshake(
    server: Server[Any],
    lifespan_state: Any,
    tg: anyio.abc.TaskGroup,
    relay: Relay,
    session: SessionInfo | None,
    protocol_version: str,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """Serve one handshake-era HTTP request with a back-channel for server-to-client requests.

    Like the SDK's stateless mode (a fresh transport per request, no shared
    memory), except that a request carrying a session can ask its client
    questions: their answers come back through the `Relay`.
    """
    transport = StreamableHTTPServerTransport(mcp_session_id=None, is_json_response_enabled=False, event_store=None)
    route = relay.open(session.nonce, transport) if session else None

    async def run(*, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with transport.connect() as (read_stream, write_stream):
            task_status.started()
            dispatcher = RoutedDispatcher(
                read_stream,
                write_stream,
                route=route or f"{ROUTE_PREFIX}.none.none",
                inline_methods=frozenset({"initialize"}),
                transport_builder=None if route else _no_back_channel,
            )
            capabilities = session.capabilities if session else None
            connection = Connection.from_envelope(protocol_version, None, capabilities)
            try:
                await serve_connection(server, dispatcher, connection=connection, lifespan_state=lifespan_state)
            except Exception:
                log.exception("serving a handshake-era request failed")

    try:
        await tg.start(run)
        await transport.handle_request(scope, receive, send)
    finally:
        if route is not None:
            relay.close(route)
        with anyio.CancelScope(shield=True):
            await transport.terminate()
