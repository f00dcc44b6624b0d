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
"""

from __future__ import annotations

from collections.abc import AsyncIterator

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
