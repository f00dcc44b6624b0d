"""The 2026-07-28 `tools/call` fast path: relayed to the owning upstream with the gateway's caller and
trace headers (never the client's credentials), streamed when the upstream streams, and still
timed out, audited, counted and sealed (input-required rounds) as on the SDK path."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.support import (
    ADMIN_HEADERS,
    GatewayProc,
    Spawn,
    mcp_client,
    modern_call,
    modern_headers,
    profile,
    start_gateway,
)

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
CONFIRM = {"confirm": {"action": "accept", "content": {"ok": True}}}


def relayed(gateway: GatewayProc, pid: str) -> float:
    for line in httpx.get(f"{gateway.base}/metrics", headers=ADMIN_HEADERS).text.splitlines():
        if line.startswith("mcp_gateway_relayed_calls_total{") and f'profile="{pid}"' in line:
            return float(line.split()[-1])
    return 0.0


def events(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]


@pytest.fixture
def gateway(spawn: Spawn, feature: str, routing: Callable[[dict[str, Any]], Path]) -> GatewayProc:
    two = [("a", feature), ("b", feature)]  # the same tools twice: the profile prefixes them
    two_profile = profile(
        "two",
        "acme",
        two,
        policy={"tools": {"allow": ["*"], "deny": ["b__fail"]}},
        limits={"toolTimeouts": {"a__slow": 1}, "rate": {"perSecond": 100, "burst": 100}},
    )
    # `a` stands for an adapter that asked for the caller; `b` for a third-party MCP server.
    two_profile["upstreams"][0]["sendCallerHeader"] = True
    config = routing({"tenants": [{"id": "acme", "limits": {"quota": {"daily": 1000}}}], "profiles": [two_profile]})
    return start_gateway(spawn, config)


def call(gateway: GatewayProc, key: str, name: str, arguments: dict[str, Any], **headers: str) -> httpx.Response:
    sent = {**modern_headers("tools/call", name), "Authorization": f"Bearer {key}", **headers}
    return httpx.post(gateway.url("two"), json=modern_call(name, arguments), headers=sent, timeout=15)


async def test_relayed_call_carries_caller_and_trace_not_credentials(gateway: GatewayProc) -> None:
    with gateway.admin() as admin:
        created = admin.post("/admin/v1/tenants/acme/keys", json={"name": "relay"}).json()
    key = created["key"]

    response = call(gateway, key, "a__whoami", {}, traceparent=TRACEPARENT, Cookie="session=secret")
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    seen = result["structuredContent"]["headers"]
    assert seen["x-mcp-caller"] == f"acme/key:{created['id']}"
    assert seen["traceparent"] == TRACEPARENT
    assert "authorization" not in seen and "cookie" not in seen and key not in json.dumps(seen)
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "mcp-gateway/two"
    assert relayed(gateway, "two") == 1

    # The prefixed name reached the upstream as its own; a malformed trace header is not forwarded.
    echoed = call(gateway, key, "b__echo", {"text": "relay"}, traceparent="00-bogus").json()["result"]
    assert echoed["content"][0]["text"] == "relay"
    bogus = call(gateway, key, "a__whoami", {}, traceparent="00-bogus").json()["result"]
    assert "traceparent" not in bogus["structuredContent"]["headers"]
    assert relayed(gateway, "two") == 3

    # Policy, quota and audit apply as on the SDK path.
    hidden = call(gateway, key, "b__fail", {"message": "x"}).json()
    assert "hidden by the profile's policy" in hidden["error"]["message"]
    with gateway.admin() as admin:
        usage = admin.get("/admin/v1/tenants/acme/usage").json()["counters"]
        audit = admin.get("/admin/v1/audit", params={"profile": "two"}).json()["items"]
    assert next(c["used"] for c in usage if c["scope"] == "tenant:acme" and c["period"].startswith("d:")) == 3
    assert [(i["tool"], i["outcome"], i["caller"]) for i in audit] == [
        ("a__whoami", "ok", f"key:{created['id']}"),
        ("b__echo", "ok", f"key:{created['id']}"),
        ("a__whoami", "ok", f"key:{created['id']}"),
    ]
    assert audit[1]["arguments"].startswith("hmac-sha256:")

    # The upstream that did not ask for the caller gets the trace context but never the caller.
    third = call(gateway, key, "b__whoami", {}, traceparent=TRACEPARENT).json()["result"]["structuredContent"]
    assert third["headers"]["traceparent"] == TRACEPARENT
    assert "x-mcp-caller" not in third["headers"] and created["id"] not in json.dumps(third)
    # The same on the SDK path (a handshake session), which both upstreams serve through the gateway's client.
    async with mcp_client(gateway.url("two"), {"Authorization": f"Bearer {key}"}) as client:
        own = (await client.call_tool("a__whoami", {})).structured_content or {}
        other = (await client.call_tool("b__whoami", {})).structured_content or {}
    assert own["headers"]["x-mcp-caller"] == f"acme/key:{created['id']}"
    assert "x-mcp-caller" not in other["headers"]


async def test_relayed_call_streams_times_out_and_seals_rounds(gateway: GatewayProc) -> None:
    with gateway.admin() as admin:
        key = admin.post("/admin/v1/tenants/acme/keys", json={}).json()["key"]

    # Progress notifications arrive on the call's SSE stream, before the result.
    meta = {"progressToken": "p1"}
    body = modern_call("a__progress_steps", {"steps": 3})
    body["params"]["_meta"].update(meta)
    headers = {**modern_headers("tools/call", "a__progress_steps"), "Authorization": f"Bearer {key}"}
    response = httpx.post(gateway.url("two"), json=body, headers=headers, timeout=15)
    assert response.headers["content-type"].startswith("text/event-stream")
    messages = events(response)
    assert [m["method"] for m in messages if "method" in m].count("notifications/progress") == 3
    assert messages[-1]["result"]["content"][0]["text"]

    # The profile's per-tool timeout bounds a relayed call; the audit says so.
    started = time.monotonic()
    slow = call(gateway, key, "a__slow", {"seconds": 20}).json()
    assert time.monotonic() - started < 10
    assert "timed out after 1 s" in slow["error"]["message"]

    # An input-required round is sealed by the gateway; its continuation (SDK path) completes.
    tool = "a__test_input_required_result_request_state"
    body = modern_call(tool, {})
    body["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] = {"elicitation": {"form": {}}}
    headers = {**modern_headers("tools/call", tool), "Authorization": f"Bearer {key}"}
    first = httpx.post(gateway.url("two"), json=body, headers=headers, timeout=15).json()["result"]
    assert first["resultType"] == "input_required" and "awaiting" not in first["requestState"]
    body["params"].update(inputResponses=CONFIRM, requestState=first["requestState"])
    done = httpx.post(gateway.url("two"), json=body, headers=headers, timeout=15)
    assert "state-ok: confirmation received" in done.text
    with gateway.admin() as admin:
        audit = admin.get("/admin/v1/audit", params={"tool": "a__slow"}).json()["items"]
    assert audit[0]["outcome"] == "timeout"
    metrics = httpx.get(f"{gateway.base}/metrics", headers=ADMIN_HEADERS).text
    assert 'mcp_gateway_errors_total{kind="upstream_timeout",profile="two",tenant="acme"} 1.0' in metrics
