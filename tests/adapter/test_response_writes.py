"""A response's writes made in one event-loop turn leave as one send (mcp_adapter/turn_writes.py).

uvicorn writes a response's head and its body apart; on loopback each send wakes the
reader (the gateway's relay client, or the caller) once more, which costs every hop of a
call. A real uvicorn server serves a small app through the gateway's and the adapter's
protocol class, whose transport is wrapped here only to record what is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from mcp_adapter.header_limit import DEFAULT_MAX_HEADER_BYTES, HeaderLimitedProtocol, header_limited
from mcp_adapter.turn_writes import COALESCE_MAX_BYTES
from starlette.types import Receive, Scope, Send

from tests.support.asgi_server import uvicorn_serving

pytestmark = pytest.mark.anyio

BODY = b'{"jsonrpc":"2.0","id":1,"result":{}}'
LARGE_CHUNK, LARGE_CHUNKS = 16 * 1024, 40


class RecordingTransport:
    """The real transport, with each `write` also recorded."""

    def __init__(self, transport: asyncio.Transport, writes: list[bytes]) -> None:
        self._transport = transport
        self._writes = writes

    def write(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class App:
    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/large":  # written chunk after chunk without the loop turning
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for _ in range(LARGE_CHUNKS):
                await send({"type": "http.response.body", "body": b"x" * LARGE_CHUNK, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if scope["path"] == "/json":
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": BODY})
            return
        # An SSE answer whose event comes later: its head must not wait for it.
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await self.release.wait()
        await send({"type": "http.response.body", "body": b"data: " + BODY + b"\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


@contextlib.asynccontextmanager
async def served() -> AsyncIterator[tuple[str, App, list[bytes]]]:
    writes: list[bytes] = []

    class Recorded(header_limited(DEFAULT_MAX_HEADER_BYTES)):  # type: ignore[misc]
        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(RecordingTransport(transport, writes))

    assert issubclass(Recorded, HeaderLimitedProtocol)
    app = App()
    async with uvicorn_serving(app, http=Recorded, lifespan="off") as base:
        yield base, app, writes


async def test_a_response_head_and_body_leave_in_one_send() -> None:
    async with served() as (base, _, writes), httpx.AsyncClient() as client:
        for _ in range(3):  # each response on the kept-alive connection
            writes.clear()
            answer = await client.get(f"{base}/json")
            assert answer.status_code == 200 and answer.content == BODY
            assert len(writes) == 1, writes
            assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and writes[0].endswith(BODY)


async def test_a_streamed_head_is_sent_without_waiting_for_its_first_event() -> None:
    async with (
        served() as (base, app, writes),
        httpx.AsyncClient() as client,
        client.stream("GET", f"{base}/events") as answer,
    ):
        # The head arrived while the app still waits for its event.
        assert answer.status_code == 200 and answer.headers["content-type"] == "text/event-stream"
        assert len(writes) == 1 and writes[0].endswith(b"\r\n\r\n")
        app.release.set()
        body = b"".join([chunk async for chunk in answer.aiter_raw()])
    assert body == b"data: " + BODY + b"\n\n"
    # The event's chunk and the end of the stream, made in one turn, left together.
    assert len(writes) == 2 and writes[1].endswith(b"\r\n0\r\n\r\n"), writes


async def test_a_closing_connection_still_gets_its_whole_response() -> None:
    async with served() as (base, _, writes), httpx.AsyncClient() as client:
        answer = await client.get(f"{base}/json", headers={"connection": "close"})
    assert answer.status_code == 200 and answer.content == BODY
    assert len(writes) == 1 and b"connection: close" in writes[0].lower()


async def test_a_large_body_is_not_held_whole() -> None:
    """Flow control and memory: what is held is sent once it reaches COALESCE_MAX_BYTES."""
    async with served() as (base, _, writes), httpx.AsyncClient() as client:
        answer = await client.get(f"{base}/large")
    assert answer.status_code == 200 and len(answer.content) == LARGE_CHUNK * LARGE_CHUNKS
    assert len(writes) > 1 and max(len(w) for w in writes) < COALESCE_MAX_BYTES + LARGE_CHUNK + 1024
