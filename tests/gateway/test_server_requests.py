"""Server-to-client traffic through gateway -> adapter -> feature server, in both eras.

Handshake-era clients get elicitation/sampling/roots requests, progress and log
notifications on their POST's stream, and their answers find the waiting request even
when they land on another replica: on the SDK path (profile `open`), and on the fast path
(profile `bridged`: the upstream is told the client's era, `sendCallerHeader`, and the adapter
turns the feature server's server requests into input rounds the gateway asks the client).
2026-07-28 clients get input-required rounds that any replica can resume, even after the one
that started the round died.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from tests.gateway.support import (
    ADMIN_HEADERS,
    MODERN,
    GatewayProc,
    Spawn,
    TcpProxy,
    mcp_client,
    profile,
    start_adapter,
    start_feature,
    start_gateway,
    write_config,
)

ROOT_URI = "file:///workspace/project"


async def _elicit(ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"answer": "blue"})


async def _sample(ctx: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text="forty-two"), model="test-model"
    )


async def _roots(ctx: Any) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root(uri=ROOT_URI, name="project")])  # type: ignore[arg-type]


CALLBACKS: dict[str, Any] = {
    "elicitation_callback": _elicit,
    "sampling_callback": _sample,
    "list_roots_callback": _roots,
}


@pytest.fixture(scope="module")
def adapter_url(spawn_module: Spawn, tmp_path_factory: pytest.TempPathFactory) -> str:
    _, feature_url = start_feature(spawn_module, name="feature-srq")
    folder = tmp_path_factory.mktemp("srq")
    return start_adapter(spawn_module, folder, feature_url, name="adapter-srq", trust_caller=True)


@pytest.fixture(scope="module")
def gateway(spawn_module: Spawn, adapter_url: str, tmp_path_factory: pytest.TempPathFactory) -> GatewayProc:
    config = write_config(tmp_path_factory.mktemp("srq-gw") / "routing.yaml", _routing(adapter_url))
    return start_gateway(spawn_module, config, name="gateway-srq")


def _routing(adapter_url: str) -> dict[str, Any]:
    routing: dict[str, Any] = {
        "tenants": [{"id": "acme"}],
        "profiles": [
            profile("open", "acme", [("adapter", adapter_url)], auth={"mode": "none"}),
            profile("bridged", "acme", [("adapter", adapter_url)], auth={"mode": "none"}),
        ],
    }
    routing["profiles"][1]["upstreams"][0]["sendCallerHeader"] = True
    return routing


def _text(result: types.CallToolResult) -> str:
    assert not result.is_error, result
    return str(result.content[0].text)  # type: ignore[union-attr]


@pytest.mark.parametrize(("mode", "pid"), [("legacy", "open"), ("legacy", "bridged"), (MODERN, "open")])
async def test_interactive_tools_reach_the_client(gateway: GatewayProc, mode: str, pid: str) -> None:
    before = _relayed(gateway.base)
    async with mcp_client(gateway.url(pid), mode=mode, **CALLBACKS) as client:
        assert client.protocol_version == ("2025-11-25" if mode == "legacy" else MODERN)
        assert _text(await client.call_tool("ask_user", {"question": "colour?"})) == "user answered: blue"
        assert _text(await client.call_tool("sample_llm", {"prompt": "6x7?"})) == "model test-model said: forty-two"
        roots = await client.call_tool("client_roots", {})
        assert ROOT_URI in str(roots.structured_content or roots.content)
    # A handshake client toward an upstream told its era takes the fast path, its rounds the gateway's
    # (each call and its resumption relayed); toward any other, the SDK path. A 2026-07-28 client's
    # first rounds are relayed; it resumes them itself, on the SDK path.
    expected = {("legacy", "open"): 0, ("legacy", "bridged"): 6, (MODERN, "open"): 3}
    assert _relayed(gateway.base) - before == expected[mode, pid]


async def test_a_handshake_client_is_asked_only_what_it_declared(gateway: GatewayProc) -> None:
    before = _relayed(gateway.base)
    async with mcp_client(gateway.url("bridged"), mode="legacy", list_roots_callback=_roots) as client:
        with pytest.raises(MCPError) as refused:
            await client.call_tool("ask_user", {"question": "colour?"})
        roots = await client.call_tool("client_roots", {})
    assert refused.value.error.code == types.MISSING_REQUIRED_CLIENT_CAPABILITY
    assert ROOT_URI in str(roots.structured_content or roots.content)
    assert _relayed(gateway.base) - before == 3  # the refused call, then client_roots and its resumption


async def test_a_handshake_client_that_leaves_while_asked_cancels_the_call(gateway: GatewayProc) -> None:
    asked = asyncio.Event()

    async def never_answers(ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.set()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def leave() -> None:
        async with mcp_client(gateway.url("bridged"), mode="legacy", elicitation_callback=never_answers) as client:
            await client.call_tool("ask_user", {"question": "colour?"})

    call = asyncio.create_task(leave())
    await asyncio.wait_for(asked.wait(), 15)
    call.cancel()  # the client's POST closes while the gateway waits for its answer
    with pytest.raises(asyncio.CancelledError):
        await call
    for _ in range(50):  # the gateway stopped waiting: the call's back channel is closed
        if _open_channels(gateway.base) == 0:
            break
        await asyncio.sleep(0.1)
    assert _open_channels(gateway.base) == 0


async def test_progress_and_logs_reach_a_handshake_client(gateway: GatewayProc) -> None:
    logs: list[Any] = []
    progress: list[float] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params.data)

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with mcp_client(gateway.url("open"), mode="legacy", logging_callback=on_log) as client:
        result = await client.call_tool("progress_steps", {"steps": 3, "delay": 0.01}, progress_callback=on_progress)
        assert _text(result) == "done 3 steps"
    assert progress == [1, 2, 3]
    assert any("step 3/3" in str(entry) for entry in logs), logs


@pytest.mark.parametrize("pid", ["open", "bridged"])
async def test_an_answer_landing_on_another_replica_reaches_the_waiting_request(
    spawn: Spawn, adapter_url: str, tmp_path: Path, pg_dsn: str, pid: str
) -> None:
    config = write_config(tmp_path / "routing.yaml", _routing(adapter_url))
    first = start_gateway(spawn, config, dsn=pg_dsn, name="gw-srq-a")
    second = start_gateway(spawn, config, dsn=pg_dsn, name="gw-srq-b")
    balancer = await TcpProxy(first.port).start()

    async def elicit_then_switch(ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        # The question came from the first replica; the answer's POST opens a new
        # connection, which the balancer now sends to the second.
        balancer.target_port = second.port
        return types.ElicitResult(action="accept", content={"answer": "green"})

    try:
        url = f"http://127.0.0.1:{balancer.port}/{pid}/mcp"
        async with mcp_client(url, mode="legacy", elicitation_callback=elicit_then_switch) as client:
            result = await client.call_tool("ask_user", {"question": "colour?"})
            assert _text(result) == "user answered: green"
    finally:
        await balancer.close()
    assert _requests(second.base, "response") >= 1
    assert _requests(first.base, "response") == 0
    assert _relayed(first.base) == (2 if pid == "bridged" else 0)  # the call and its resumption


async def test_an_input_required_round_resumes_after_its_replica_died(
    spawn: Spawn, adapter_url: str, tmp_path: Path, pg_dsn: str
) -> None:
    config = write_config(tmp_path / "routing.yaml", _routing(adapter_url))
    first = start_gateway(spawn, config, dsn=pg_dsn, name="gw-irr-a")
    second = start_gateway(spawn, config, dsn=pg_dsn, name="gw-irr-b")
    balancer = await TcpProxy(first.port).start()

    async def elicit_after_crash(ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        first.process.kill()  # round 1 was answered by the first replica, which is now gone
        balancer.target_port = second.port
        balancer.cut()
        return types.ElicitResult(action="accept", content={"answer": "red"})

    try:
        url = f"http://127.0.0.1:{balancer.port}/open/mcp"
        async with mcp_client(url, mode=MODERN, elicitation_callback=elicit_after_crash) as client:
            result = await client.call_tool("ask_user", {"question": "colour?"})
            assert _text(result) == "user answered: red"
    finally:
        await balancer.close()
    assert _requests(second.base, "tools/call") == 1


def _relayed(base: str) -> float:
    text = httpx.get(f"{base}/metrics", headers=ADMIN_HEADERS).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("mcp_gateway_relayed_calls_total{")
    )


def _open_channels(base: str) -> float:
    text = httpx.get(f"{base}/metrics", headers=ADMIN_HEADERS).text
    found = [line for line in text.splitlines() if line.startswith("mcp_gateway_server_requests_waiting ")]
    assert found, "mcp_gateway_server_requests_waiting is not exposed"
    return float(found[0].rsplit(" ", 1)[1])


def _requests(base: str, method: str) -> float:
    total = 0.0
    for line in httpx.get(f"{base}/metrics", headers=ADMIN_HEADERS).text.splitlines():
        if line.startswith("mcp_gateway_requests_total{") and f'method="{method}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total
