"""A cap on the size of a request's head (request line and header fields): 431 beyond it.

uvicorn's httptools protocol has no such setting: httptools accumulates a header field in
memory however long it grows, so an 8 MiB header was read, kept and handed to the app.
(uvicorn's h11 protocol has `h11_max_incomplete_event_size`, but answers 400, and h11 is the
slower parser.) This subclass counts the head's bytes as they arrive, both the fields parsed
so far and the bytes fed while a field is still incomplete, and answers
`431 Request Header Fields Too Large` and ends the connection once they exceed the limit,
before the app sees the request. The gateway and the adapter both serve through it.

It also reports each accepted TCP connection (`on_connection`), which the gateway and the
adapter count as a metric: new connections per call is how connection churn on a hop shows,
and sends each response's writes of one event-loop turn together (`TurnCoalescedWrites`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mcp_adapter.turn_writes import TurnCoalescedWrites

DEFAULT_MAX_HEADER_BYTES = 64 * 1024
# How long the gateway and the adapter keep an idle client connection open (uvicorn's default is 5 s).
# Longer than their clients keep one: the relay client's pool (aiohttp, 15 s) and common load balancers
# (60 s). So the client is the one to close an idle connection: the server never closes one a client is
# just reusing (a failed call), and a pool that idled a few seconds needs no new connections.
KEEP_ALIVE_SECONDS = 75
# How long the rest of a refused request is drained (read and dropped) before the connection closes.
LINGER_SECONDS = 5.0
# Per header field: its name, its value, ": " and CRLF.
_FIELD_OVERHEAD = 4


class HeaderLimitedProtocol(HttpToolsProtocol):
    max_head_bytes = DEFAULT_MAX_HEADER_BYTES
    on_connection: Callable[[], None] | None = None  # set as a staticmethod by `header_limited`

    _head_bytes = 0  # url and complete header fields of the current request
    _fed_in_head = 0  # bytes received since the current head began (covers a field still being read)
    _in_head = True
    _refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.on_connection is not None:
            self.on_connection()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        if not self._in_head:
            self._fed_in_head = 0
            return
        self._fed_in_head += len(data)
        if self._fed_in_head > self.max_head_bytes and not self._refused:
            self._refuse()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._in_head = True

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._head_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._head_bytes += len(name) + len(value) + _FIELD_OVERHEAD

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._refused:
            return
        if self._head_bytes > self.max_head_bytes:
            self._refuse()
            return
        previous = self.cycle
        super().on_headers_complete()
        if self.cycle is not previous:  # a new request's cycle, its task not started yet
            self.cycle.transport = TurnCoalescedWrites(self.transport, self.loop)  # type: ignore[assignment]

    def _flush_response(self) -> None:
        """Send what the current response holds back, before the protocol writes or closes by itself."""
        writes = getattr(self.cycle, "transport", None)
        if isinstance(writes, TurnCoalescedWrites):
            writes.flush()

    def shutdown(self) -> None:
        self._flush_response()  # the server is stopping: a response finished this turn goes first
        super().shutdown()

    def send_400_response(self, msg: str) -> None:
        self._flush_response()  # a bad pipelined request's 400 must follow the answer before it
        super().send_400_response(msg)

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def _refuse(self) -> None:
        """431, then a lingering close: the rest of the request is read and dropped for a moment.

        Closing at once, with the client still sending, would reset the connection and could
        destroy the 431 before the client reads it.
        """
        self._refused = True
        self._flush_response()
        message = f"request header fields exceed {self.max_head_bytes} bytes".encode()
        head = [b"HTTP/1.1 431 Request Header Fields Too Large\r\n"]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: " + str(len(message)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + message)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def header_limited(max_head_bytes: int, on_connection: Callable[[], None] | None = None) -> type[HeaderLimitedProtocol]:
    """The protocol class to give uvicorn (`http=`), refusing heads over `max_head_bytes`.

    `on_connection` is called once per accepted connection (a metric's `inc`).
    """
    attributes: dict[str, object] = {"max_head_bytes": max_head_bytes}
    if on_connection is not None:
        attributes["on_connection"] = staticmethod(on_connection)
    return type("HeaderLimitedProtocol", (HeaderLimitedProtocol,), attributes)
