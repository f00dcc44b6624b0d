"""Handshake-era sessions survive the loss of the gateway replica that created them: the
signed Mcp-Session-Id lets any replica sharing the database serve the session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.gateway.support import ADMIN_HEADERS, Spawn, TcpProxy, mcp_client, profile, start_gateway


def initialize_count(base: str) -> float:
    total = 0.0
    for line in httpx.get(f"{base}/metrics", headers=ADMIN_HEADERS).text.splitlines():
        if line.startswith("mcp_gateway_requests_total{") and 'method="initialize"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_session_moves_to_another_replica(
    spawn: Spawn, feature: str, routing: Callable[[dict[str, Any]], Path], pg_dsn: str
) -> None:
    config = routing(
        {
            "tenants": [{"id": "acme"}],
            "profiles": [profile("open", "acme", [("feat", feature)], auth={"mode": "none"})],
        }
    )
    first = start_gateway(spawn, config, dsn=pg_dsn, name="gw-a")
    second = start_gateway(spawn, config, dsn=pg_dsn, name="gw-b")
    balancer = await TcpProxy(first.port).start()
    try:
        url = f"http://127.0.0.1:{balancer.port}/open/mcp"
        async with mcp_client(url, mode="legacy") as client:
            assert client.protocol_version == "2025-11-25"
            assert (await client.call_tool("echo", {"text": "before"})).content[0].text == "before"  # type: ignore[union-attr]
            assert initialize_count(first.base) == 1

            first.process.kill()  # a crash, not a graceful shutdown
            balancer.target_port = second.port
            balancer.cut()

            result = await client.call_tool("echo", {"text": "after"})
            assert result.content[0].text == "after"  # type: ignore[union-attr]
            tools = await client.list_tools()
            assert "echo" in {t.name for t in tools.tools}
        # The second replica served the session without a new handshake.
        assert initialize_count(second.base) == 0
    finally:
        await balancer.close()


async def test_session_token_is_bound_to_profile_and_caller(
    spawn: Spawn, feature: str, routing: Callable[[dict[str, Any]], Path]
) -> None:
    config = routing(
        {
            "tenants": [{"id": "acme"}],
            "profiles": [
                profile("one", "acme", [("feat", feature)], auth={"mode": "none"}),
                profile("two", "acme", [("feat", feature)], auth={"mode": "none"}),
            ],
        }
    )
    gateway = start_gateway(spawn, config)
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    response = httpx.post(gateway.url("one"), json=init, headers=headers)
    assert response.status_code == 200
    session = response.headers["mcp-session-id"]
    assert session.startswith("v1.")
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    same = httpx.post(gateway.url("one"), json=ping, headers={**headers, "Mcp-Session-Id": session})
    assert same.status_code == 200
    other = httpx.post(gateway.url("two"), json=ping, headers={**headers, "Mcp-Session-Id": session})
    assert other.status_code == 404
    tampered = session[:-2] + ("AA" if not session.endswith("AA") else "BB")
    assert httpx.post(gateway.url("one"), json=ping, headers={**headers, "Mcp-Session-Id": tampered}).status_code == 404
