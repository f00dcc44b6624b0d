"""No connection churn toward upstreams: after warm-up, 1,000 handshake-era tool calls open no new
TCP connection to the upstream on the fast path, and at most a few on the SDK path (sessions whose
capability declaration is too large to keep in the token), whose client pool may still grow by one
when a background request overlaps a call; before keepalive.py it opened one per call.

On every hop of client → gateway → adapter → upstream, the connections each process accepted are
also what its metric says (`mcp_gateway_http_connections_total`, `mcp_adapter_http_connections_total`):
1,000 calls of one client add none on any hop."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.gateway.support import (
    ADMIN_HEADERS,
    LEGACY,
    MODERN,
    GatewayProc,
    Spawn,
    TcpProxy,
    modern_call,
    modern_headers,
    profile,
    rpc,
    start_adapter,
    start_gateway,
)
from tests.support.processes import free_port

JSON_SSE = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
CALLS = 1000
WARM_UP = 20
SDK_PATH_ALLOWED = 5  # its client pool growing when a background request overlaps a call
# Over sessions.MAX_CAPABILITIES_CHARS: the token cannot say what the client declared, so the SDK path serves it.
SDK_PATH_CAPABILITIES = {"roots": {}, "experimental": {"padding": {"text": "x" * 4096}}}


def _unprobed_during(config: dict[str, Any]) -> dict[str, Any]:
    """The profile with its upstream probed once, at start: a health probe is a fresh client by design
    (health.py), every 10 s by default, so on a slow machine one lands among the calls and is no churn."""
    config["upstreams"][0]["healthCheck"] = {"intervalSeconds": 3600}
    return config


def _open_gateway(spawn: Spawn, routing: Callable[[dict[str, Any]], Path], upstream: str) -> tuple[GatewayProc, str]:
    """A gateway with one open profile on `upstream`; it and the profile's MCP URL."""
    config = routing(
        {
            "tenants": [{"id": "acme"}],
            "profiles": [_unprobed_during(profile("open", "acme", [("feat", upstream)], auth={"mode": "none"}))],
        }
    )
    gateway = start_gateway(spawn, config)
    return gateway, gateway.url("open")


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


async def test_sdk_path_opens_no_upstream_connection_per_call(
    spawn: Spawn, counted: TcpProxy, routing: Callable[[dict[str, Any]], Path]
) -> None:
    """A session whose declared capabilities are not kept in its token takes the SDK path; the fast path
    is the next test's."""
    gateway, url = _open_gateway(spawn, routing, f"http://127.0.0.1:{counted.port}/mcp")
    with httpx.Client(timeout=30) as http:
        headers = _session(http, url, SDK_PATH_CAPABILITIES)
        _calls(http, url, headers, WARM_UP)
        warm = counted.accepted
        _calls(http, url, headers, CALLS)
    opened = counted.accepted - warm
    assert opened <= SDK_PATH_ALLOWED, f"{opened} new upstream connections in {CALLS} calls"
    metrics = httpx.get(f"{gateway.base}/metrics", headers=ADMIN_HEADERS, timeout=10).text
    relayed = [line for line in metrics.splitlines() if line.startswith("mcp_gateway_relayed_calls_total{")]
    assert all(line.endswith(" 0.0") for line in relayed), relayed  # all of them on the SDK path


def _accepted(metrics_url: str, name: str, **kwargs: Any) -> int:
    """A process's accepted connections, from its metric (the read's own connection included)."""
    text = httpx.get(metrics_url, timeout=10, **kwargs).text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found is not None, f"{name} is not exposed"
    return int(float(found.group(1)))


async def test_fast_path_opens_no_connection_on_any_hop(
    spawn: Spawn, counted: TcpProxy, routing: Callable[[dict[str, Any]], Path], tmp_path: Path
) -> None:
    """A session without back-channel capabilities: the handshake fast path, client → gateway → adapter → upstream."""
    adapter = start_adapter(spawn, tmp_path, f"http://127.0.0.1:{counted.port}/mcp")
    config = routing(
        {
            "tenants": [{"id": "acme"}],
            "profiles": [_unprobed_during(profile("open", "acme", [("feat", adapter)], auth={"mode": "none"}))],
        }
    )
    gateway = start_gateway(spawn, config)
    url = gateway.url("open")
    adapter_metrics, gateway_metrics = adapter.removesuffix("/mcp") + "/metrics", f"{gateway.base}/metrics"

    def hops() -> tuple[int, int, int]:
        into_gateway = _accepted(gateway_metrics, "mcp_gateway_http_connections_total", headers=ADMIN_HEADERS)
        return into_gateway, _accepted(adapter_metrics, "mcp_adapter_http_connections_total"), counted.accepted

    with httpx.Client(timeout=30) as http:
        headers = _session(http, url, {})
        _calls(http, url, headers, WARM_UP)
        before = hops()
        assert before[0] >= 2 and before[1] >= 2 and before[2] >= 1  # the metrics count what was accepted
        _calls(http, url, headers, CALLS)
    after = hops()
    # Each metric read came on a connection of its own: one more on the gateway and the adapter.
    opened = (after[0] - before[0] - 1, after[1] - before[1] - 1, after[2] - before[2])
    assert opened == (0, 0, 0), f"new connections in {CALLS} calls (client, gateway → adapter, adapter → upstream)"


CALLERS = 20


async def test_new_upstream_sessions_share_one_pool_of_connections(
    spawn: Spawn, counted: TcpProxy, tmp_path: Path
) -> None:
    """A `per-caller` source opens one upstream session per caller (both eras: a 2026-07-28 one, and a
    handshake-era one for a gateway's handshake client); they share the source's pooled client
    (keepalive.ClientPool). 20 new 2026-07-28 sessions opened 20 connections before it, none now; 20
    handshake-era ones 70 before, 40 now (each holds its GET stream open on a connection of its own)."""
    source = {"name": "feat", "type": "mcp", "url": f"http://127.0.0.1:{counted.port}/mcp", "scope": "per-caller"}
    config = tmp_path / "adapter-pooled.yaml"
    config.write_text(yaml.safe_dump({"server": {"trustCallerHeader": True}, "sources": [source]}))
    port = free_port()
    cmd = [sys.executable, "-m", "mcp_adapter.cli", "--config", str(config), "--port", str(port)]
    spawn(cmd, name="adapter-pooled", ready_url=f"http://127.0.0.1:{port}/readyz", timeout=60)
    url = f"http://127.0.0.1:{port}/mcp"
    per_session = {MODERN: 0, LEGACY: 2}
    with httpx.Client(timeout=30) as http:
        for era in (LEGACY, MODERN):
            before = counted.accepted
            for i in range(CALLERS):
                headers = {**modern_headers("tools/call", "echo"), "X-MCP-Caller": f"acme/{era}-{i}"}
                if era == LEGACY:
                    headers["X-MCP-Client-Era"] = LEGACY
                body = modern_call("echo", {"text": str(i)}, i)
                response = http.post(url, json=body, headers=headers)
                assert response.status_code == 200 and f'"text":"{i}"' in response.text, response.text
            opened = counted.accepted - before
            assert opened <= per_session[era] * CALLERS + SDK_PATH_ALLOWED, (
                f"{opened} connections, {CALLERS} {era} sessions"
            )


LATE_END_SECONDS = 0.02
LATE_END_CALLS = 300


@pytest.fixture
async def late_ending(feature: str) -> AsyncIterator[TcpProxy]:
    """A forwarder in front of the upstream that holds each chunked answer's terminating chunk back 20 ms."""
    port = int(feature.rsplit(":", 1)[1].split("/")[0])
    proxy = await TcpProxy(port, end_chunk_delay=LATE_END_SECONDS).start()
    yield proxy
    await proxy.close()


def _streamed_calls(http: httpx.Client, url: str, headers: dict[str, str], count: int) -> None:
    """Calls answered as SSE on every hop: each reports progress (one step) before its result."""
    for i in range(count):
        params = {"name": "progress_steps", "arguments": {"steps": 1, "delay": 0}, "_meta": {"progressToken": i}}
        response = http.post(url, json=rpc("tools/call", params, i), headers=headers)
        assert response.status_code == 200 and "text/event-stream" in response.headers["content-type"], response.text
        assert '"progress"' in response.text and '"isError":false' in response.text, response.text


async def test_answers_that_end_late_keep_their_connection(
    spawn: Spawn, late_ending: TcpProxy, routing: Callable[[dict[str, Any]], Path], tmp_path: Path
) -> None:
    """A busy upstream's SSE answer ends (the chunked body's terminating chunk) a moment after its final
    event. The relay answers at the final event and reads the end off the caller's path, so the connection
    goes back to the pool; released unread it was closed, and each such call opened a new one."""
    adapter = start_adapter(spawn, tmp_path, f"http://127.0.0.1:{late_ending.port}/mcp")
    in_front = await TcpProxy(int(adapter.rsplit(":", 1)[1].split("/")[0]), LATE_END_SECONDS).start()
    try:
        config = routing(
            {
                "tenants": [{"id": "acme"}],
                "profiles": [
                    _unprobed_during(
                        profile(
                            "open", "acme", [("feat", f"http://127.0.0.1:{in_front.port}/mcp")], auth={"mode": "none"}
                        )
                    )
                ],
            }
        )
        gateway = start_gateway(spawn, config)
        url = gateway.url("open")
        with httpx.Client(timeout=30) as http:
            headers = _session(http, url, {})
            _streamed_calls(http, url, headers, WARM_UP)  # the pools grow to the calls in flight and those ending
            before = (in_front.accepted, late_ending.accepted)
            _streamed_calls(http, url, headers, LATE_END_CALLS)
        opened = (in_front.accepted - before[0], late_ending.accepted - before[1])
    finally:
        await in_front.close()
    assert max(opened) <= SDK_PATH_ALLOWED, (
        f"new connections in {LATE_END_CALLS} calls (gateway → adapter, adapter → upstream)"
    )


IN_FLIGHT = 40  # over httpx's default of 20 kept-alive connections
ROUNDS = 3


async def test_sdk_path_keeps_every_pooled_connection_under_concurrency(
    spawn: Spawn, counted: TcpProxy, routing: Callable[[dict[str, Any]], Path]
) -> None:
    """40 SDK-path calls in flight at once, round after round: the upstream client's pool keeps all the
    connections it opened. With httpx's default (20 kept alive) each round closed 20 on release and the
    next round opened 20 anew."""
    _, url = _open_gateway(spawn, routing, f"http://127.0.0.1:{counted.port}/mcp")
    with httpx.Client(timeout=30) as http:
        headers = _session(http, url, SDK_PATH_CAPABILITIES)
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def call(i: int) -> None:
            # Long enough that all 40 are in flight upstream together, however slowly the gateway starts them.
            body = rpc("tools/call", {"name": "slow", "arguments": {"seconds": 1.0}}, i)
            response = await client.post(url, json=body, headers=headers)
            assert response.status_code == 200 and "slept" in response.text.lower(), response.text

        async def one_round() -> None:
            async with asyncio.TaskGroup() as group:
                for i in range(IN_FLIGHT):
                    group.create_task(call(i))

        for _ in range(2):  # the pools grow to 40 connections
            await one_round()
        warm = counted.accepted
        for _ in range(ROUNDS):
            await one_round()
    opened = counted.accepted - warm
    assert opened <= SDK_PATH_ALLOWED, f"{opened} new upstream connections in {ROUNDS} rounds of {IN_FLIGHT} calls"
