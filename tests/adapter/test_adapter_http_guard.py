"""Host/Origin validation in front of /mcp (DNS rebinding protection) and its defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from mcp_adapter.http_guard import LOOPBACK_HOSTS, GuardSettings

from tests.adapter.support import connect, feature_stdio, start_adapter

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def test_defaults_follow_the_bind_address() -> None:
    assert GuardSettings.for_bind("127.0.0.1", [], []).allowed_hosts == LOOPBACK_HOSTS
    assert GuardSettings.for_bind("::1", [], []).allowed_hosts == LOOPBACK_HOSTS
    # Listening on every interface (a pod): the Service names clients use are unknown, so Host is not checked...
    assert GuardSettings.for_bind("0.0.0.0", [], []).allowed_hosts is None
    # ...unless configured; browser origins stay loopback-only by default either way.
    configured = GuardSettings.for_bind("0.0.0.0", ["adapter.ns.svc:8080"], [])
    assert configured.allowed_hosts == ("adapter.ns.svc:8080",)
    assert "http://localhost" in configured.allowed_origins


async def test_rebinding_attempts_are_refused(spawn: Any, tmp_path: Path) -> None:
    adapter = start_adapter(spawn, tmp_path, [feature_stdio()], server={"allowedOrigins": ["https://app.example.com"]})
    port = adapter.url.rsplit(":", 1)[1]
    async with httpx.AsyncClient(base_url=adapter.url, headers=HEADERS) as http:
        evil_host = await http.post("/mcp", json=INITIALIZE, headers={"Host": "evil.example.com"})
        assert evil_host.status_code == 421
        assert "allowedHosts" in evil_host.json()["error"]["message"]
        evil_origin = await http.post("/mcp", json=INITIALIZE, headers={"Origin": "https://evil.example.com"})
        assert evil_origin.status_code == 403
        assert "allowedOrigins" in evil_origin.json()["error"]["message"]
        allowed = await http.post(
            "/mcp", json=INITIALIZE, headers={"Host": f"localhost:{port}", "Origin": "https://app.example.com"}
        )
        assert allowed.status_code == 200
        # Probes and scrapes are not MCP traffic: they reach the pod by IP.
        assert (await http.get("/healthz", headers={"Host": "10.1.2.3:8080"})).status_code == 200
    async with connect(adapter.mcp_url, "legacy") as client:  # an ordinary client is unaffected
        assert (await client.call_tool("echo", {"text": "ok"})).content[0].text == "ok"  # type: ignore[union-attr]


async def test_oversized_request_heads_get_431(spawn: Any, tmp_path: Path) -> None:
    """uvicorn's httptools parser has no header limit: an 8 MiB header used to be read whole."""
    adapter = start_adapter(spawn, tmp_path, [feature_stdio()])
    async with httpx.AsyncClient(base_url=adapter.url, headers=HEADERS, timeout=30) as http:
        for extra in (
            {"X-Padding": "p" * (8 * 1024 * 1024)},
            {"Authorization": "Bearer " + "a" * 100_000},
            {f"X-H{i}": "v" * 100 for i in range(2000)},  # many small fields add up too
        ):
            refused = await http.post("/mcp", json=INITIALIZE, headers=extra)
            assert refused.status_code == 431
            assert refused.text == "request header fields exceed 65536 bytes"
        # Large but sane heads still pass, and the adapter is unharmed.
        assert (await http.post("/mcp", json=INITIALIZE, headers={"X-Padding": "p" * 16_000})).status_code == 200
    assert "Traceback" not in adapter.process.log_text()
