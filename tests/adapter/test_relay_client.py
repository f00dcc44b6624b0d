"""The pass-through relay's HTTP client against a real loopback HTTP server.

One client relays every caller's calls, so it must keep no cookies and follow no
redirects, and it must tell a request that never left (safe to retry) from one
whose outcome is unknown."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from mcp_adapter.relay_client import RelayClient, RelaySent, RelayUnsent

from tests.support.loopback_http import serve_http


class Upstream:
    """Records each POST's headers; answers as `mode` says."""

    def __init__(self) -> None:
        self.mode = "json"
        self.seen: list[dict[str, str]] = []
        self.server: ThreadingHTTPServer = serve_http(self._answer, ("POST",), keep_alive=True)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/mcp"

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        handler.rfile.read(int(handler.headers.get("content-length", "0")))
        self.seen.append({k.lower(): v for k, v in handler.headers.items()})
        if self.mode == "redirect":
            handler.send_response(307)
            handler.send_header("Location", "http://127.0.0.1:9/elsewhere")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        elif self.mode == "hang-up":
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
        else:
            handler.send_response(200)
            handler.send_header("Set-Cookie", "session=alice-secret; Path=/")
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", "2")
            handler.end_headers()
            handler.wfile.write(b"{}")


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.server.shutdown()


async def test_keeps_no_cookie_between_callers(upstream: Upstream) -> None:
    client = RelayClient(upstream.url, {"x-source-header": "configured"})
    try:
        for _ in range(2):
            async with client.post(b"{}", {"content-type": "application/json"}) as response:
                assert response.status == 200
                assert await response.read() == b"{}"
    finally:
        await client.aclose()
    assert [seen.get("cookie") for seen in upstream.seen] == [None, None]
    assert all(seen["x-source-header"] == "configured" for seen in upstream.seen)


async def test_adds_the_hooks_headers_to_each_request(upstream: Upstream) -> None:
    callers = iter(["acme/key:1", "acme/key:2"])
    client = RelayClient(upstream.url, {}, extra_headers=lambda: [("x-mcp-caller", next(callers))])
    try:
        for _ in range(2):
            async with client.post(b"{}", {}) as response:
                await response.read()
    finally:
        await client.aclose()
    assert [seen["x-mcp-caller"] for seen in upstream.seen] == ["acme/key:1", "acme/key:2"]


async def test_does_not_follow_redirects(upstream: Upstream) -> None:
    upstream.mode = "redirect"
    client = RelayClient(upstream.url, {})
    try:
        async with client.post(b"{}", {}) as response:
            assert response.status == 307
    finally:
        await client.aclose()
    assert len(upstream.seen) == 1


async def test_a_closed_port_is_unsent() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = RelayClient(f"http://127.0.0.1:{port}/mcp", {})
    try:
        with pytest.raises(RelayUnsent, match="ClientConnectorError"):
            async with client.post(b"{}", {}):
                pass
    finally:
        await client.aclose()


async def test_a_hang_up_after_the_request_is_sent(upstream: Upstream) -> None:
    upstream.mode = "hang-up"
    client = RelayClient(upstream.url, {})
    try:
        with pytest.raises(RelaySent, match="ServerDisconnectedError"):
            async with client.post(b"{}", {}) as response:
                await response.read()
    finally:
        await client.aclose()
    assert len(upstream.seen) == 1
