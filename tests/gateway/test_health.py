"""Upstream health and circuit breaking with real processes: an upstream that dies, hangs, answers
slowly or flaps, behind a loopback TCP proxy the test switches; the profile's healthy upstream keeps
answering every call meanwhile."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError
from mcp_gateway import errors
from mcp_gateway.breaker import Breaker, State
from mcp_gateway.config import CircuitBreaker, HealthCheck, Upstream
from mcp_gateway.health import Status, UpstreamHealth, describe, probe

from tests.gateway.support import (
    ADMIN_HEADERS,
    ADMIN_TOKEN,
    MODERN,
    GatewayProc,
    Spawn,
    TcpProxy,
    mcp_client,
    start_feature,
    start_gateway,
)
from tests.gateway.test_notifications import Inbox, wait_streams
from tests.servers.launch import everything_command
from tests.support.processes import free_port

WAIT = 20.0
# Generous probe timeouts: a probe slowed by a busy machine must not look like a hung upstream.
FAST_PROBES = {"intervalSeconds": 0.1, "timeoutSeconds": 3, "healthyThreshold": 2, "unhealthyThreshold": 2}


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers: a hung upstream."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock.getsockname()[1]
    sock.close()


class FlappingProxy(TcpProxy):
    """Refuses every other new connection: each probe (one fresh connection) alternates pass and fail."""

    def __init__(self, target_port: int) -> None:
        super().__init__(target_port)
        self.connections = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.connections % 2 == 0:
            writer.close()
            return
        await super()._handle(reader, writer)


def readyz(gateway: GatewayProc, admin: bool = True) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"} if admin else {}
    body: dict[str, Any] = httpx.get(f"{gateway.base}/readyz", headers=headers, timeout=5).json()
    return body


async def until(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f"still not {what}"
        await asyncio.sleep(0.1)


def upstream_state(gateway: GatewayProc, profile: str, upstream: str) -> dict[str, Any]:
    state: dict[str, Any] = readyz(gateway).get("upstreams", {}).get(profile, {}).get(upstream, {})
    return state


def sample(metrics: str, series: str) -> float:
    line = next((line for line in metrics.splitlines() if line.startswith(series + " ")), None)
    assert line is not None, f"{series} not in the metrics"
    return float(line.rsplit(" ", 1)[1])


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


async def call_text(client: Any, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result
    return str(result.content[0].text)


async def test_dead_and_hung_upstream_is_unhealthy_hidden_and_refused_then_recovers(
    spawn: Spawn, routing: Callable[[dict[str, Any]], Path], blackhole: int
) -> None:
    _, url_a = start_feature(spawn, "feature-a")
    _, url_b = start_feature(spawn, "feature-b")
    proxy = await TcpProxy(port_of(url_b)).start()
    check = {**FAST_PROBES, "hideToolsWhenUnhealthy": True}
    config = routing(
        {
            "tenants": [{"id": "acme"}],
            "profiles": [
                {
                    "id": "two",
                    "tenant": "acme",
                    "upstreams": [
                        {"name": "a", "url": url_a, "healthCheck": {"intervalSeconds": 30}},
                        {"name": "b", "url": f"http://127.0.0.1:{proxy.port}/mcp", "healthCheck": check},
                    ],
                    "auth": {"mode": "none"},
                }
            ],
        }
    )
    gateway = start_gateway(spawn, config)
    inbox = Inbox()
    try:
        async with (
            mcp_client(gateway.url("two"), message_handler=inbox) as client,
            mcp_client(gateway.url("two"), mode=MODERN) as modern,
        ):
            assert "b__echo" in {t.name for t in (await client.list_tools()).tools}
            await wait_streams(gateway, 1)
            await until("healthy", lambda: upstream_state(gateway, "two", "b").get("health") == "healthy")

            for phase, target in (("dead", None), ("hung", blackhole)):
                async with modern.listen(tools_list_changed=True) as events:
                    proxy.target_port = target
                    proxy.cut()
                    await until(phase, lambda: upstream_state(gateway, "two", "b")["health"] == "unhealthy")
                    with anyio.fail_after(WAIT):
                        event: Any = await events.__anext__()
                    assert type(event).__name__ == "ToolsListChanged"
                state = upstream_state(gateway, "two", "b")
                assert state["circuit"] == "open" and state["lastError"], state
                if phase == "hung":
                    assert "no answer in time" in state["lastError"], state
                public = readyz(gateway, admin=False)["upstreams"]["two"]["b"]
                assert public["health"] == "unhealthy" and "lastError" not in public

                # Clients see: the tools gone from tools/list (with a notification), a clear refusal, `a` untouched.
                await inbox.wait_for(types.ToolListChangedNotification)
                names = {t.name for t in (await client.list_tools(cache_mode="refresh")).tools}
                assert "b__echo" not in names and "a__echo" in names
                started = time.monotonic()
                with pytest.raises(MCPError) as refused:
                    await client.call_tool("b__echo", {"text": "x"})
                assert time.monotonic() - started < 5  # refused at once, not after b's 30 s call timeout
                assert refused.value.code == errors.UPSTREAM_UNAVAILABLE
                message = refused.value.error.message
                assert "upstream 'b'" in message and "tried again" in message, message
                assert "Traceback" not in message
                with pytest.raises(MCPError) as refused:  # the same for a 2026-07-28 client (relayed path)
                    await modern.call_tool("b__echo", {"text": "x"})
                assert (
                    refused.value.code == errors.UPSTREAM_UNAVAILABLE and "upstream 'b'" in refused.value.error.message
                )
                assert await call_text(client, "a__echo", text="alive") == "alive"
                assert await call_text(modern, "a__echo", text="alive") == "alive"

                inbox.messages.clear()
                proxy.target_port = port_of(url_b)
                await until("healthy again", lambda: upstream_state(gateway, "two", "b")["health"] == "healthy")
                await inbox.wait_for(types.ToolListChangedNotification)
                assert "b__echo" in {t.name for t in (await client.list_tools(cache_mode="refresh")).tools}
                assert upstream_state(gateway, "two", "b")["circuit"] == "closed"
                assert await call_text(client, "b__echo", text="back") == "back"
                inbox.messages.clear()
    finally:
        await proxy.close()

    metrics = httpx.get(f"{gateway.base}/metrics", headers=ADMIN_HEADERS).text
    labels = 'profile="two",state="healthy",tenant="acme",upstream="b"'
    assert f"mcp_gateway_upstream_health{{{labels}}} 1.0" in metrics
    moved = 'profile="two",tenant="acme",to="{}",upstream="b"'
    assert sample(metrics, f"mcp_gateway_upstream_health_transitions_total{{{moved.format('unhealthy')}}}") >= 2
    assert sample(metrics, f"mcp_gateway_upstream_circuit_transitions_total{{{moved.format('open')}}}") >= 2


async def test_slow_and_hanging_calls_open_the_circuit_under_load_without_failing_healthy_calls(
    spawn: Spawn, routing: Callable[[dict[str, Any]], Path]
) -> None:
    _, url_a = start_feature(spawn, "feature-a")
    _, url_b = start_feature(spawn, "feature-b")
    config = routing(
        {
            "tenants": [{"id": "acme"}],
            "profiles": [
                {
                    "id": "two",
                    "tenant": "acme",
                    "upstreams": [
                        {"name": "a", "url": url_a},
                        {
                            "name": "b",
                            "url": url_b,
                            # As for an upstream that needs each user's own credentials: never probed.
                            "healthCheck": {"enabled": False},
                            "circuitBreaker": {"consecutiveFailures": 2, "openSeconds": 1},
                        },
                    ],
                    "auth": {"mode": "none"},
                    "limits": {"toolTimeouts": {"b__slow": 1}},
                }
            ],
        }
    )
    gateway = start_gateway(spawn, config)
    async with mcp_client(gateway.url("two")) as client:
        assert upstream_state(gateway, "two", "b")["health"] == "unprobed"
        # Slow but within its timeout: a success.
        assert "slept" in await call_text(client, "b__slow", seconds=0.3)
        assert upstream_state(gateway, "two", "b")["circuit"] == "closed"

        async def healthy_load(calls: int, concurrency: int) -> list[str]:
            gate = asyncio.Semaphore(concurrency)

            async def one(i: int) -> str:
                async with gate:
                    return await call_text(client, "a__echo", text=f"n{i}")

            return await asyncio.gather(*(one(i) for i in range(calls)))

        load = asyncio.create_task(healthy_load(60, 8))
        for _ in range(2):  # two hung calls time out: the circuit opens
            with pytest.raises(MCPError) as timed_out:
                await client.call_tool("b__slow", {"seconds": 30})
            assert timed_out.value.code == errors.UPSTREAM_TIMEOUT
        assert upstream_state(gateway, "two", "b")["circuit"] == "open"
        with pytest.raises(MCPError) as refused:
            await client.call_tool("b__echo", {"text": "x"})
        assert refused.value.code == errors.UPSTREAM_UNAVAILABLE
        message = refused.value.error.message
        assert "upstream 'b'" in message and "2 consecutive calls failed" in message and "retried at" in message
        assert refused.value.error.data["upstream"] == "b"  # type: ignore[index]
        assert await load == [f"n{i}" for i in range(60)]  # every call to the healthy upstream succeeded

        # After openSeconds one trial call goes through; its success closes the circuit.
        async def trial() -> bool:
            try:
                return await call_text(client, "b__echo", text="trial") == "trial"
            except MCPError as exc:
                assert exc.code == errors.UPSTREAM_UNAVAILABLE
                return False

        await _eventually(trial)
        assert upstream_state(gateway, "two", "b")["circuit"] == "closed"

    metrics = httpx.get(f"{gateway.base}/metrics", headers=ADMIN_HEADERS).text
    assert 'outcome="circuit_open",profile="two",tenant="acme",tool="b__echo"' in metrics
    assert 'mcp_gateway_errors_total{kind="upstream_unavailable",profile="two",tenant="acme"}' in metrics


async def _eventually(attempt: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + WAIT
    while not await attempt():
        assert time.monotonic() < deadline, "never succeeded"
        await asyncio.sleep(0.2)


async def test_a_flapping_upstream_does_not_flap_its_status(
    spawn: Spawn, routing: Callable[[dict[str, Any]], Path]
) -> None:
    _, url_b = start_feature(spawn, "feature-b")
    proxy = await FlappingProxy(port_of(url_b)).start()
    check = {**FAST_PROBES, "unhealthyThreshold": 3}
    config = routing(
        {
            "tenants": [{"id": "acme"}],
            "profiles": [
                {
                    "id": "one",
                    "tenant": "acme",
                    "upstreams": [{"name": "b", "url": f"http://127.0.0.1:{proxy.port}/mcp", "healthCheck": check}],
                    "auth": {"mode": "none"},
                }
            ],
        }
    )
    gateway = start_gateway(spawn, config)
    try:
        async with mcp_client(gateway.url("one")) as client:
            await client.list_tools()
            await until("probed", lambda: upstream_state(gateway, "one", "b").get("probes", 0) >= 12)
        state = upstream_state(gateway, "one", "b")
        assert state["health"] == "healthy", state
        assert state["lastError"], state  # probes did fail, one at a time
    finally:
        await proxy.close()
    metrics = httpx.get(f"{gateway.base}/metrics", headers=ADMIN_HEADERS).text
    assert 'to="unhealthy"' not in metrics


# -- the state machines alone (no clock: time is a variable) -------------------------------------


def test_breaker_opens_on_consecutive_failures_or_error_rate_and_half_opens_with_one_trial() -> None:
    now = [0.0]
    moves: list[State] = []
    settings = CircuitBreaker(consecutive_failures=3, error_rate=0.5, window_calls=10, minimum_calls=6, open_seconds=5)
    breaker = Breaker(settings, lambda state, _: moves.append(state), clock=lambda: now[0])
    for failed in (True, True, False, True, False, True):  # never 3 in a row, but 4 of 6 failed
        assert breaker.admit() is None
        breaker.record(failed)
    assert breaker.state is State.OPEN and "4 of the last 6 calls failed" in breaker.reason
    refusal = breaker.admit()
    assert refusal is not None and refusal.retry_in == 5
    now[0] = 5.0
    assert breaker.admit() is None  # the trial
    assert breaker.admit() is not None  # only one at a time
    breaker.record(True, "boom")
    assert breaker.state is State.OPEN and "trial call failed (boom)" in breaker.reason
    now[0] = 10.0
    assert breaker.admit() is None
    breaker.record(False)
    assert moves == [State.OPEN, State.HALF_OPEN, State.OPEN, State.HALF_OPEN, State.CLOSED]
    for _ in range(3):
        breaker.record(True)
    assert breaker.state is State.OPEN and "3 consecutive calls failed" in breaker.reason


def test_breaker_held_by_the_health_check_waits_for_its_release() -> None:
    now = [0.0]
    breaker = Breaker(CircuitBreaker(open_seconds=1), clock=lambda: now[0])
    breaker.hold("probes fail")
    now[0] = 100.0
    refusal = breaker.admit()
    assert refusal is not None and refusal.retry_in is None  # no trial call while probes say down
    breaker.release()
    assert breaker.state is State.CLOSED and breaker.admit() is None


def test_health_status_needs_thresholds_in_a_row() -> None:
    upstream = Upstream(
        name="b", url="http://x/mcp", health_check=HealthCheck(healthy_threshold=2, unhealthy_threshold=3)
    )
    health = UpstreamHealth("b", upstream, Breaker(upstream.circuit_breaker))
    assert health.observe(None) and health.status is Status.HEALTHY  # the first answer decides from unknown
    for error in ("x", None, "x", "x", None):
        assert not health.observe(error)
    assert health.status is Status.HEALTHY
    assert not health.observe("x") and not health.observe("x")
    assert health.observe("x") and health.status is Status.UNHEALTHY
    assert not health.observe(None) and not health.observe("x") and not health.observe(None)
    assert health.observe(None) and health.status is Status.HEALTHY


async def test_the_probe_speaks_each_era(spawn: Spawn, feature: str) -> None:
    """A 2026-07-28 upstream answers `server/discover`; a handshake-only one (the reference TypeScript
    server) gets `initialize` and `ping`."""
    assert await probe(feature, {}, 10) == MODERN
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    spawn(everything_command("streamableHttp"), name="everything", env={"PORT": str(port)}, ready_url=url)
    version = await probe(url, {}, 10)
    assert version != MODERN and version.startswith("20"), version
    with pytest.raises(Exception) as failed:
        await probe(f"http://127.0.0.1:{free_port()}/mcp", {}, 5)
    assert "Connect" in describe(failed.value), describe(failed.value)
