"""Keep upstream connections alive across SDK-path calls answered as SSE.

The SDK's streamable-HTTP client closes a POST's response as soon as it has read
the final JSON-RPC message of an SSE answer, before the stream's terminating
chunk. An HTTP/1.1 connection whose response was not read to its end cannot be
reused, so every such call cost a new TCP connection (and the upstream a new
accept): one per call on each hop, gateway → adapter and adapter → upstream.

`keep_alive(client)` wraps the client's transport so that closing a response first
reads what is left of it, for a moment and a bounded number of bytes: a finished
answer's terminating chunk arrives at once, and its connection goes back to the
pool. A stream that really is still open (a listen stream being dropped) costs at
most `DRAIN_SECONDS` (or `DRAIN_MAX_BYTES`) before it is closed as before.

`ClientPool` goes one step further: the upstream sessions of one source (one per caller
of a `per-caller` source, one per era, each reconnect) share one such client, so a session
that opens takes an idle kept-alive connection of the others instead of opening its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import httpx2

# Generous for a busy machine (the terminating chunk follows the final event at once when the
# upstream is not starved of CPU); only a stream still open when dropped ever waits this long.
DRAIN_SECONDS = 0.1
DRAIN_MAX_BYTES = 64 * 1024


class _DrainingStream(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream) -> None:
        self._inner = inner
        self._source: AsyncIterator[bytes] | None = None
        self._finished = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self._source = self._inner.__aiter__()
        async for chunk in self._source:
            yield chunk
        self._finished = True

    async def aclose(self) -> None:
        try:
            if self._source is not None and not self._finished:
                await self._drain(self._source)
        finally:
            await self._inner.aclose()

    async def _drain(self, source: AsyncIterator[bytes]) -> None:
        read = 0
        with anyio.move_on_after(DRAIN_SECONDS):
            try:
                async for chunk in source:
                    read += len(chunk)
                    if read > DRAIN_MAX_BYTES:
                        return
            except (httpx2.HTTPError, RuntimeError):
                return  # a broken or already-running stream: closed below, as before
        self._finished = True


class DrainingTransport(httpx2.AsyncBaseTransport):
    """A transport whose responses read their remainder before closing (see the module doc)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        stream = response.stream
        if isinstance(stream, httpx2.AsyncByteStream):
            response.stream = _DrainingStream(stream)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def keep_alive(client: httpx2.AsyncClient) -> httpx2.AsyncClient:
    """`client`, its default transport wrapped (proxy mounts from the environment are left as they are)."""
    # httpx2 offers no public hook between a response and its connection; the default transport
    # is the client's `_transport` (what `transport=` would set, without losing the env's mounts).
    client._transport = DrainingTransport(client._transport)
    return client


class ClientPool:
    """One kept-alive client shared by the upstream sessions of a source, per set of request headers.

    A session borrows it for its life (`borrow`); the client closes with its last borrower. Headers
    that change (a rotated credential read from the environment) get a client of their own, so a
    new session never sends stale ones while older sessions finish with theirs.
    """

    def __init__(self, make: Callable[[dict[str, str]], httpx2.AsyncClient]) -> None:
        self._make = make
        self._clients: dict[frozenset[tuple[str, str]], tuple[httpx2.AsyncClient, int]] = {}

    @asynccontextmanager
    async def borrow(self, headers: dict[str, str]) -> AsyncIterator[httpx2.AsyncClient]:
        key = frozenset(headers.items())
        client, users = self._clients.get(key) or (keep_alive(self._make(headers)), 0)
        self._clients[key] = (client, users + 1)
        try:
            yield client
        finally:
            client, users = self._clients[key]
            if users > 1:
                self._clients[key] = (client, users - 1)
            else:
                del self._clients[key]
                with anyio.CancelScope(shield=True):
                    await client.aclose()

    @property
    def clients(self) -> int:
        return len(self._clients)
