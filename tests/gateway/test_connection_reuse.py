"""No connection churn toward upstreams: after warm-up, 1,000 handshake-era tool calls open no new
TCP connection to the upstream on the fast path, and at most a few on the SDK path (sessions with a
back channel), whose client pool may still grow by one when a background request overlaps a call;
before keepalive.py it opened one per call."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.support import LEGACY, Spawn, TcpProxy, profile, rpc, start_gateway

JSON_SSE = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
CALLS = 1000
WARM_UP = 20


@pytest.fixture
async def counted(feature: str) -> AsyncIterator[TcpProxy]:
    """A loopback forwarder in front of the upstream that counts the connections opened through it."""
    port = int(feature.rsplit(":", 1)[1].split("/")[0])
    proxy = await TcpProxy(port).start()
    yield proxy
    await proxy.close()


def _session(http: httpx.Client, url: str, capabilities: dict[str, Any]) -> dict[str, str]:
    params = {"protocolVersion": LEGACY, "capabilities": capabilities, "clientInfo": {"name": "reuse", "version": "1"}}
    init = http.post(url, json=rpc("initialize", params), headers=JSON_SSE)
    assert init.status_code == 200, init.text
    return {**JSON_SSE, "Mcp-Session-Id": init.headers["mcp-session-id"], "MCP-Protocol-Version": LEGACY}


def _calls(http: httpx.Client, url: str, headers: dict[str, str], count: int) -> None:
    for i in range(count):
        response = http.post(
            url, json=rpc("tools/call", {"name": "echo", "arguments": {"text": str(i)}}, i), headers=headers
        )
        assert response.status_code == 200 and f'"text":"{i}"' in response.text, response.text


@pytest.mark.parametrize(("capabilities", "allowed"), [({}, 0), ({"roots": {}}, 5)], ids=["fast-path", "sdk-path"])
async def test_no_new_upstream_connections_per_call(
    spawn: Spawn,
    counted: TcpProxy,
    routing: Callable[[dict[str, Any]], Path],
    capabilities: dict[str, Any],
    allowed: int,
) -> None:
    upstream = f"http://127.0.0.1:{counted.port}/mcp"
    config = routing(
        {
            "tenants": [{"id": "acme"}],
            "profiles": [profile("open", "acme", [("feat", upstream)], auth={"mode": "none"})],
        }
    )
    gateway = start_gateway(spawn, config)
    url = gateway.url("open")
    with httpx.Client(timeout=30) as http:
        headers = _session(http, url, capabilities)
        _calls(http, url, headers, WARM_UP)
        warm = counted.accepted
        _calls(http, url, headers, CALLS)
    opened = counted.accepted - warm
    assert opened <= allowed, f"{opened} new upstream connections in {CALLS} calls"
