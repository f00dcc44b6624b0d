"""Trace context reaches upstreams; list results are cacheable per caller only; DELETE ends a
session on every replica."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.gateway.support import (
    MODERN,
    Spawn,
    mcp_client,
    modern_call,
    modern_headers,
    profile,
    rpc,
    start_gateway,
)

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
        assert result["cacheScope"] == "private" and result["ttlMs"] > 0
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
