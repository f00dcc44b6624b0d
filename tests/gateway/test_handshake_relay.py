"""The handshake-era fast path (handshake_relay.py): tool calls of handshake sessions are relayed as
2026-07-28 calls and answer as the SDK path does (sessions with a back channel: test_server_requests.py).
Both eras' fast paths (this one and passthrough.py) keep auth failures, policy and quota refusals,
audit, an upstream dying mid-call and cancellation as they were on the SDK path."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError
from mcp_gateway import errors

from tests.gateway.support import (
    ADMIN_HEADERS,
    LEGACY,
    MODERN,
    GatewayProc,
    Spawn,
    mcp_client,
    modern_call,
    modern_headers,
    profile,
    rpc,
    start_feature,
    start_gateway,
)

JSON_SSE = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
CLIENT_INFO = {"name": "raw", "version": "1"}


def relayed(gateway: GatewayProc, pid: str) -> float:
    for line in httpx.get(f"{gateway.base}/metrics", headers=ADMIN_HEADERS).text.splitlines():
        if line.startswith("mcp_gateway_relayed_calls_total{") and f'profile="{pid}"' in line:
            return float(line.split()[-1])
    return 0.0


def messages(response: httpx.Response) -> list[dict[str, Any]]:
    """The JSON-RPC messages of a response, JSON or SSE."""
    if response.headers["content-type"].startswith("application/json"):
        return [response.json()]
    return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]


def open_session(
    http: httpx.Client, url: str, capabilities: dict[str, Any], key: str | None = None
) -> dict[str, str] | int:
    """Headers of a new handshake-era session, or the HTTP status of a refused `initialize`."""
    auth = {"Authorization": f"Bearer {key}"} if key else {}
    params = {"protocolVersion": LEGACY, "capabilities": capabilities, "clientInfo": CLIENT_INFO}
    init = http.post(url, json=rpc("initialize", params), headers={**JSON_SSE, **auth})
    if init.status_code != 200:
        return init.status_code
    return {**JSON_SSE, **auth, "Mcp-Session-Id": init.headers["mcp-session-id"], "MCP-Protocol-Version": LEGACY}


def session(http: httpx.Client, url: str, capabilities: dict[str, Any], key: str | None = None) -> dict[str, str]:
    headers = open_session(http, url, capabilities, key)
    assert isinstance(headers, dict), headers
    return headers


def tool_call(name: str, arguments: dict[str, Any], rid: int = 1) -> dict[str, Any]:
    return rpc("tools/call", {"name": name, "arguments": arguments}, rid)


@pytest.fixture
def gateway(spawn: Spawn, feature: str, routing: Callable[[dict[str, Any]], Path]) -> GatewayProc:
    config = routing(
        {
            "tenants": [{"id": "acme"}],
            "profiles": [
                profile("open", "acme", [("feat", feature)], auth={"mode": "none"}),
                profile(
                    "keyed",
                    "acme",
                    [("feat", feature)],
                    policy={"tools": {"deny": ["fail"]}},
                    limits={"quota": {"daily": 4}},
                ),
            ],
        }
    )
    return start_gateway(spawn, config)


async def _roots(ctx: Any) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[])


async def test_fast_path_answers_as_the_sdk_path(gateway: GatewayProc) -> None:
    calls: list[tuple[str, dict[str, Any]]] = [
        ("echo", {"text": "hi"}),
        ("add", {"a": 2, "b": 3}),
        ("fail", {"message": "nope"}),
        ("test_multiple_content_types", {}),
        ("test_embedded_resource", {}),
    ]
    answers: dict[bool, list[Any]] = {}
    for declares_roots in (False, True):  # a back channel (roots): the SDK path, toward this upstream
        options: dict[str, Any] = {"list_roots_callback": _roots} if declares_roots else {}
        before = relayed(gateway, "open")
        progress: list[float] = []
        logs: list[Any] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append(value)  # noqa: B023 - used within this iteration only

        async def on_log(params: types.LoggingMessageNotificationParams) -> None:
            logs.append(params.data)  # noqa: B023

        async with mcp_client(gateway.url("open"), mode="legacy", logging_callback=on_log, **options) as client:
            results: list[Any] = [(await client.call_tool(n, a)).model_dump() for n, a in calls]
            with pytest.raises(MCPError) as refused:
                await client.call_tool("protocol_error", {"code": -32602, "message": "bad input"})
            results.append((refused.value.error.code, refused.value.error.message))
            steps = await client.call_tool("progress_steps", {"steps": 3, "delay": 0.01}, progress_callback=on_progress)
            results += [steps.model_dump(), progress, [str(entry) for entry in logs]]
        answers[declares_roots] = results
        fast = relayed(gateway, "open") - before
        assert fast == (0 if declares_roots else len(calls) + 2)
    assert answers[False] == answers[True]
    assert answers[False][-2] == [1, 2, 3] and len(answers[False][-1]) == 3
    assert answers[False][0]["content"][0]["text"] == "hi"
    assert answers[False][len(calls)] == (-32602, "bad input")


Call = Callable[[str, dict[str, Any], int], httpx.Response]


def caller(http: httpx.Client, url: str, era: str, key: str | None = None) -> Call | int:
    """How a client of `era` calls tools on `url` (a handshake session opened first), or the HTTP status
    of a refused `initialize`. A 2026-07-28 client has no session: its refusals come on the call."""
    auth = {"Authorization": f"Bearer {key}"} if key else {}
    if era == MODERN:

        def modern(name: str, arguments: dict[str, Any], rid: int = 1) -> httpx.Response:
            headers = {**modern_headers("tools/call", name), **auth}
            return http.post(url, json=modern_call(name, arguments, rid), headers=headers)

        return modern
    headers = open_session(http, url, {}, key)
    if isinstance(headers, int):
        return headers

    def handshake(name: str, arguments: dict[str, Any], rid: int = 1) -> httpx.Response:
        assert isinstance(headers, dict)
        return http.post(url, json=tool_call(name, arguments, rid), headers=headers)

    return handshake


def refused_status(call: Call | int) -> int:
    """The HTTP status a refused caller gets: at `initialize` (handshake era) or on its first call."""
    return call if isinstance(call, int) else call("echo", {"text": "x"}, 1).status_code


@pytest.mark.parametrize("era", [LEGACY, MODERN])
async def test_fast_path_keeps_auth_policy_quota_and_audit(gateway: GatewayProc, era: str) -> None:
    url = gateway.url("keyed")
    with gateway.admin() as admin:
        created = admin.post("/admin/v1/tenants/acme/keys", json={"name": "hs"}).json()
    with httpx.Client(timeout=30) as http:
        assert refused_status(caller(http, url, era)) == 401
        assert refused_status(caller(http, url, era, key="mcpk_not-a-key")) == 401
        call = caller(http, url, era, key=created["key"])
        assert not isinstance(call, int)
        if era == LEGACY:
            # A session token without the key that opened it is refused before anything is relayed.
            headers = session(http, url, {}, key=created["key"])
            stripped = {k: v for k, v in headers.items() if k != "Authorization"}
            assert http.post(url, json=tool_call("echo", {"text": "x"}), headers=stripped).status_code == 401

        hidden = messages(call("fail", {}, 1))[-1]
        assert "hidden by the profile's policy" in hidden["error"]["message"]
        answered = [messages(call("echo", {"text": str(i)}, i)) for i in range(4)]
        assert [m[-1]["result"]["content"][0]["text"] for m in answered] == ["0", "1", "2", "3"]
        over = call("echo", {"text": "5"}, 5)
        assert over.status_code == 429
        assert (
            over.json()["error"]["code"] == errors.RATE_LIMITED
            and "daily quota of 4" in over.json()["error"]["message"]
        )
    assert relayed(gateway, "keyed") == 4
    with gateway.admin() as admin:
        audit = admin.get("/admin/v1/audit", params={"profile": "keyed"}).json()["items"]
    assert [(i["tool"], i["outcome"], i["caller"]) for i in audit] == [("echo", "ok", f"key:{created['id']}")] * 4


@pytest.mark.parametrize("era", [LEGACY, MODERN])
async def test_upstream_dying_mid_call_is_an_upstream_error(
    spawn: Spawn, routing: Callable[[dict[str, Any]], Path], era: str
) -> None:
    process, feature = start_feature(spawn, name="doomed")
    config = routing(
        {"tenants": [{"id": "acme"}], "profiles": [profile("open", "acme", [("feat", feature)], auth={"mode": "none"})]}
    )
    gateway = start_gateway(spawn, config)
    url = gateway.url("open")
    body, headers = _first_call(url, era, "slow", {"seconds": 20})
    async with httpx.AsyncClient(timeout=30) as http:
        call = asyncio.create_task(http.post(url, json=body, headers=headers))
        await asyncio.sleep(1.0)
        process.kill()
        response = await asyncio.wait_for(call, 15)
    assert response.status_code == 200
    error = messages(response)[-1]["error"]
    assert error["code"] == errors.UPSTREAM_ERROR
    assert "may or may not have run" in error["message"]
    assert relayed(gateway, "open") == 1


@pytest.mark.parametrize("era", [LEGACY, MODERN])
async def test_dropped_call_is_cancelled_and_audited(gateway: GatewayProc, era: str) -> None:
    url = gateway.url("open")
    body, headers = _first_call(url, era, "slow", {"seconds": 30})
    async with httpx.AsyncClient(timeout=30) as http:
        call = asyncio.create_task(http.post(url, json=body, headers=headers))
        await asyncio.sleep(1.0)
        call.cancel()  # the client gives up: its connection closes
        with pytest.raises(asyncio.CancelledError):
            await call
    audit: list[dict[str, Any]] = []
    for _ in range(50):
        with gateway.admin() as admin:
            audit = admin.get("/admin/v1/audit", params={"tool": "slow"}).json()["items"]
        if audit:
            break
        await asyncio.sleep(0.1)
    assert [i["outcome"] for i in audit] == ["cancelled"]
    assert relayed(gateway, "open") == 1


def _first_call(url: str, era: str, name: str, arguments: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The body and headers of a tool call in `era` (a handshake session opened for it)."""
    if era == MODERN:
        return modern_call(name, arguments), modern_headers("tools/call", name)
    with httpx.Client(timeout=30) as http:
        return tool_call(name, arguments), session(http, url, {})
