"""Sending a response's writes of one event-loop turn as one (the gateway's and the adapter's servers).

uvicorn writes a response's head and its body separately, and a streamed body's last
chunk apart from the end marker: each is a send, and on loopback each send wakes the
reader (the gateway's relay client, or the caller) once more, on every hop of a call.
Held to the end of the turn, they go out together. A response's head is not held longer
than that: an SSE stream whose first event comes later still starts at once.
"""

from __future__ import annotations

import asyncio

# Held writes are sent at once beyond this, so flow control still sees a large body as it grows.
COALESCE_MAX_BYTES = 64 * 1024


class TurnCoalescedWrites:
    """The transport a response is written to (uvicorn uses `write`, `is_closing` and `close`)."""

    __slots__ = ("_loop", "_pending", "_size", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)
        self._size += len(data)
        if self._size >= COALESCE_MAX_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending, self._size = [], 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self.flush()
        self._transport.close()
