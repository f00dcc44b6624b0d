"""In-memory SSE event store, so a client can resume a closed stream (SEP-1699 polling)."""

from __future__ import annotations

from mcp.server.streamable_http import EventCallback, EventMessage, EventStore
from mcp_types import JSONRPCMessage

MAX_EVENTS = 10_000


class MemoryEventStore(EventStore):
    def __init__(self) -> None:
        self._events: list[tuple[str, int, JSONRPCMessage | None]] = []
        self._next_id = 0

    async def store_event(self, stream_id: str, message: JSONRPCMessage | None) -> str:
        self._next_id += 1
        self._events.append((stream_id, self._next_id, message))
        del self._events[:-MAX_EVENTS]  # bounded: old events are dropped
        return str(self._next_id)

    async def replay_events_after(self, last_event_id: str, send_callback: EventCallback) -> str | None:
        try:
            after = int(last_event_id)
        except ValueError:
            return None
        stream = next((s for s, i, _ in self._events if i == after), None)
        if stream is None:
            return None
        for stream_id, event_id, message in list(self._events):
            if stream_id == stream and event_id > after and message is not None:
                await send_callback(EventMessage(message, str(event_id)))
        return stream
