"""Trace context reaches upstreams; list results are cacheable per caller only; DELETE ends a
session on every replica."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.gateway.support import (
    MODERN,
    GatewayProc,
    Spawn,
    mcp_client,
    modern_call,
    modern_headers,
    profile,
    rpc,
    start_gateway,
)
from tests.support.processes import free_port

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
JSON_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _result(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    if response.headers["content-type"].startswith("text/event-stream"):
        data = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
        body = json.loads(data[-1])
    else:
        body = response.json()
    assert "result" in body, body
    result: dict[str, Any] = body["result"]
    return result


async def test_trace_context_reaches_the_upstream(
    spawn: Spawn, feature: str, routing: Callable[[dict[str, Any]], Path]
) -> None:
    config = routing(
        {"tenants": [{"id": "acme"}], "profiles": [profile("open", "acme", [("feat", feature)], auth={"mode": "none"})]}
    )
    gateway = start_gateway(spawn, config)
    traced = {**modern_headers("tools/call", "whoami"), "traceparent": TRACEPARENT, "tracestate": "vendor=abc"}
    seen = _result(httpx.post(gateway.url("open"), json=modern_call("whoami", {}), headers=traced, timeout=10))
    headers = seen["structuredContent"]["headers"]
    assert headers["traceparent"] == TRACEPARENT and headers["tracestate"] == "vendor=abc"

    bogus = {**modern_headers("tools/call", "whoami"), "traceparent": "not-a-trace"}
    seen = _result(httpx.post(gateway.url("open"), json=modern_call("whoami", {}), headers=bogus, timeout=10))
    assert "traceparent" not in seen["structuredContent"]["headers"]

    # A handshake-era client's trace context travels too, and a later request without one carries none.
    async with mcp_client(gateway.url("open"), {"traceparent": TRACEPARENT}) as client:
        result = await client.call_tool("whoami", {})
        assert (result.structured_content or {})["headers"]["traceparent"] == TRACEPARENT
    plain = _result(
        httpx.post(
            gateway.url("open"),
            json=modern_call("whoami", {}),
            headers=modern_headers("tools/call", "whoami"),
            timeout=10,
        )
    )
    assert "traceparent" not in plain["structuredContent"]["headers"]


async def test_tenants_never_share_cached_lists(
    spawn: Spawn, feature: str, routing: Callable[[dict[str, Any]], Path]
) -> None:
    config = routing(
        {
            "tenants": [{"id": "acme"}, {"id": "globex"}],
            "profiles": [
                profile(
                    "acme-dev", "acme", [("feat", feature)], auth={"mode": "none"}, policy={"tools": {"deny": ["slow"]}}
                ),
                profile(
                    "globex-dev",
                    "globex",
                    [("feat", feature)],
                    auth={"mode": "none"},
                    policy={"tools": {"allow": ["slow", "echo"]}},
                ),
            ],
        }
    )
    gateway = start_gateway(spawn, config)
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
    lists = {}
    for pid in ("acme-dev", "globex-dev"):
        result = _result(
            httpx.post(
                gateway.url(pid),
                json=rpc("tools/list", {"_meta": meta}),
                headers=modern_headers("tools/list"),
                timeout=10,
            )
        )
        # The feature server says its lists are stale at once (ttlMs 0): the gateway does not extend that.
        assert result["cacheScope"] == "private" and result["ttlMs"] == 0
        lists[pid] = {t["name"] for t in result["tools"]}
    assert "slow" not in lists["acme-dev"] and "add" in lists["acme-dev"]
    assert lists["globex-dev"] == {"slow", "echo"}

    # Real clients with their response caches on: each sees only its own profile's list.
    for pid, expected in lists.items():
        async with mcp_client(gateway.url(pid), mode=MODERN) as client:
            for _ in range(2):  # the second listing may come from the client's cache
                assert {t.name for t in (await client.list_tools()).tools} == expected


async def test_delete_ends_the_session_on_every_replica(
    spawn: Spawn, feature: str, routing: Callable[[dict[str, Any]], Path], pg_dsn: str
) -> None:
    config = routing(
        {"tenants": [{"id": "acme"}], "profiles": [profile("open", "acme", [("feat", feature)], auth={"mode": "none"})]}
    )
    first = start_gateway(spawn, config, dsn=pg_dsn, name="gw-del-a")
    second = start_gateway(spawn, config, dsn=pg_dsn, name="gw-del-b")
    init = rpc(
        "initialize",
        {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    )
    session = httpx.post(first.url("open"), json=init, headers=JSON_HEADERS).headers["mcp-session-id"]
    with_session = {**JSON_HEADERS, "Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}
    assert httpx.post(second.url("open"), json=rpc("ping", rid=2), headers=with_session).status_code == 200

    assert httpx.delete(first.url("open"), headers=with_session).status_code == 200
    for gateway in (first, second):
        gone = None
        for _ in range(50):  # the other replica hears of it through the database, within moments
            gone = httpx.post(gateway.url("open"), json=rpc("ping", rid=3), headers=with_session)
            if gone.status_code == 404:
                break
            time.sleep(0.1)
        assert gone is not None and gone.status_code == 404
        assert "initialize" in gone.json()["error"]["message"]


HINTED_SERVER = Path(__file__).resolve().parent / "servers" / "hinted_server.py"


def start_hinted(spawn: Spawn, ttl_ms: int, scope: str, tool: str) -> str:
    port = free_port()
    cmd = [sys.executable, str(HINTED_SERVER), "--port", str(port), "--ttl-ms", str(ttl_ms), "--scope", scope]
    spawn([*cmd, "--tool", tool], name=f"hinted-{tool}", ready_url=f"http://127.0.0.1:{port}/mcp")
    return f"http://127.0.0.1:{port}/mcp"


def list_hints(gateway: GatewayProc, pid: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
    result = _result(
        httpx.post(
            gateway.url(pid),
            json=rpc("tools/list", {"_meta": meta}),
            headers={**modern_headers("tools/list"), **(headers or {})},
            timeout=10,
        )
    )
    return result["ttlMs"], result["cacheScope"]


async def test_list_cache_hints_follow_the_upstreams(spawn: Spawn, routing: Callable[[dict[str, Any]], Path]) -> None:
    """ttlMs is the shortest of the upstreams' hints, capped by the gateway; public only for anonymous
    profiles whose upstreams all say public."""
    slow_public = start_hinted(spawn, 12_000, "public", "alpha")
    fast_public = start_hinted(spawn, 5_000, "public", "beta")
    private = start_hinted(spawn, 20_000, "private", "gamma")
    data: dict[str, Any] = {
        "gateway": {"maxListTtlMs": 60_000},
        "tenants": [{"id": "acme"}],
        "profiles": [
            profile("both", "acme", [("a", slow_public), ("b", fast_public)], auth={"mode": "none"}),
            profile("keyed", "acme", [("a", slow_public)]),
            profile("mixed", "acme", [("a", slow_public), ("c", private)], auth={"mode": "none"}),
        ],
    }
    config = routing(data)
    gateway = start_gateway(spawn, config)
    assert list_hints(gateway, "both") == (5_000, "public")
    assert list_hints(gateway, "mixed") == (12_000, "private")

    # A keyed profile's list is what that caller may see: private, whatever the upstream says.
    with gateway.admin() as admin:
        key = admin.post("/admin/v1/tenants/acme/keys", json={"name": "k"}).json()["key"]
    assert list_hints(gateway, "keyed", {"Authorization": f"Bearer {key}"}) == (12_000, "private")

    # The gateway's cap applies on the next config reload, without a restart.
    data["gateway"]["maxListTtlMs"] = 2_000
    routing(data)
    deadline = time.monotonic() + 10
    while list_hints(gateway, "both") != (2_000, "public") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list_hints(gateway, "both") == (2_000, "public")
