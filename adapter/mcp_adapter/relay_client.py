"""The pooled HTTP client that pass-through calls (`passthrough.py`) travel on: aiohttp.

Why not the SDK's httpx2 client, which the sessions use: per request it costs
~0.33 ms of CPU on one connection and ~1 ms with 64 pooled connections (its
pool probes every idle connection on each request and release), more than the
upstream's own handling of a small call. aiohttp, already installed for Kopf,
does the same POST for ~0.07-0.1 ms (`bench/README.md`).

One client serves every caller of a source, so:
- cookies are never kept (a cookie set for one caller's call must not ride on another's);
- redirects are not followed (an MCP endpoint that redirects a POST is misconfigured,
  and following could leave the configured origin);
- proxy environment variables are ignored.

Failures are `RelayUnsent` (nothing was sent: retry is safe) or `RelaySent`
(the outcome is unknown).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp

HeaderHook = Callable[[], list[tuple[str, str]]]
"""Headers to add to a request made now (the gateway adds trace context and the caller)."""

CONNECT_TIMEOUT_SECONDS = 10.0
"""Waiting for a pooled connection plus opening one."""
READ_IDLE_TIMEOUT_SECONDS = 300.0
"""Longest silence between two chunks of an answer (an SSE stream may wait long for a tool)."""
DRAIN_SECONDS = 1.0
DRAIN_MAX_BYTES = 64 * 1024
"""How long, and how much, an answer's unread rest is read off the caller's path to keep its connection."""


class RelayUnsent(Exception):
    """The request never left: no connection could be had."""


class RelaySent(Exception):
    """The request was (or may have been) sent, and the exchange broke before its answer was complete."""


class RelayResponse:
    """An upstream answer being received: status, content type, and its body as bytes or chunks."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.content_type = response.headers.get("content-type", "")

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RelaySent(_describe(exc)) from None

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RelaySent(_describe(exc)) from None


class RelayClient:
    """POSTs to one upstream endpoint over kept-alive pooled connections."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        *,
        extra_headers: HeaderHook | None = None,
        max_connections: int = 128,
    ) -> None:
        self.url = url
        self._headers = headers
        self._extra_headers = extra_headers
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._draining: set[asyncio.Task[None]] = set()  # referenced, or the loop may drop them

    def _open(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running event loop, as aiohttp requires.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=CONNECT_TIMEOUT_SECONDS, sock_read=READ_IDLE_TIMEOUT_SECONDS
                ),
                trust_env=False,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    @asynccontextmanager
    async def post(self, body: bytes, headers: dict[str, str]) -> AsyncIterator[RelayResponse]:
        """POST `body`; the response is open inside the block (closed, or its connection reused, after)."""
        if self._extra_headers is not None:
            headers = {**headers, **dict(self._extra_headers())}
        session = self._open()
        try:
            response = await session.post(self.url, data=body, headers=headers, allow_redirects=False)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise RelayUnsent(_describe(exc)) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RelaySent(_describe(exc)) from None
        try:
            yield RelayResponse(response)
        except BaseException:
            response.close()  # a half-read answer (or a cancelled call): drop the connection
            raise
        if response.content.is_eof():
            response.release()
        else:
            self._finish_later(response)

    def _finish_later(self, response: aiohttp.ClientResponse) -> None:
        """Read what is left of an answer in the background, then give its connection back to the pool.

        The relay stops at an SSE answer's final event, and the stream's terminating chunk often
        follows in another segment (at once, but after the caller moved on). Releasing a response
        with unread body closes its connection, so under load most calls cost a new one; waiting
        for the chunk on the caller's path would cost latency instead.
        """
        task = asyncio.get_running_loop().create_task(_drain(response))
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)

    async def aclose(self) -> None:
        for task in list(self._draining):
            task.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _drain(response: aiohttp.ClientResponse) -> None:
    """Read `response` to its end, bounded in time and bytes; release it if it ended, else close it."""
    read = 0
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            async for chunk in response.content.iter_any():
                read += len(chunk)
                if read > DRAIN_MAX_BYTES:
                    break
    except (aiohttp.ClientError, TimeoutError):
        pass  # a broken or still-open stream: closed below
    finally:
        if response.content.is_eof():
            response.release()
        else:
            response.close()


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
