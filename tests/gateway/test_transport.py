"""Transport hygiene on /{profile}/mcp: unknown profiles, malformed JSON-RPC, header/body
mismatch, Origin, size limit, protocol version, and ops endpoints."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.gateway.support import (
    ADMIN_HEADERS,
    MODERN,
    GatewayProc,
    Spawn,
    mcp_client,
    modern_call,
    modern_headers,
    profile,
    rpc,
    start_gateway,
    write_config,
)
from tests.support.processes import free_port

JSON_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def gateway(spawn_module: Spawn, feature_module: str, tmp_path_factory: pytest.TempPathFactory) -> GatewayProc:
    feature = feature_module
    config = write_config(
        tmp_path_factory.mktemp("transport") / "routing.yaml",
        {
            "gateway": {"allowedOrigins": ["https://app.example"], "maxRequestBytes": 4096},
            "tenants": [{"id": "acme"}],
            "profiles": [profile("open", "acme", [("feat", feature)], auth={"mode": "none"})],
        },
    )
    return start_gateway(spawn_module, config)


def post(gw: GatewayProc, body: Any, headers: dict[str, str] | None = None, pid: str = "open") -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(gw.url(pid), content=content, headers={**JSON_HEADERS, **(headers or {})}, timeout=10)


def assert_no_trace(response: httpx.Response) -> None:
    assert "Traceback" not in response.text and 'File "' not in response.text


async def test_unknown_profile_is_404_with_jsonrpc_error(gateway: GatewayProc) -> None:
    # Only to the holder of a valid API key: others get an apiKey profile's 401 (tests/hardening/test_auth_attacks.py).
    with gateway.admin() as admin:
        key = admin.post("/admin/v1/tenants/acme/keys", json={"name": "typo"}).json()["key"]
    response = post(gateway, rpc("tools/list"), {"Authorization": f"Bearer {key}"}, pid="nope")
    assert response.status_code == 404
    error = response.json()["error"]
    assert "unknown profile" in error["message"] and "'nope'" in error["message"]


async def test_malformed_json_is_parse_error(gateway: GatewayProc) -> None:
    response = post(gateway, b"{not json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32700
    assert_no_trace(response)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"id": 1, "method": "tools/list"}, "jsonrpc"),
        ({"jsonrpc": "2.0", "id": 1, "method": 5}, "method"),
        ({"jsonrpc": "2.0", "id": {"x": 1}, "method": "ping"}, "id"),
        ({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": [1]}, "params"),
        ([{"jsonrpc": "2.0", "id": 1, "method": "ping"}], "batch"),
        ("hello", "object"),
    ],
)
async def test_invalid_jsonrpc_is_invalid_request(gateway: GatewayProc, body: Any, fragment: str) -> None:
    response = post(gateway, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == -32600
    assert fragment in error["message"].lower()


async def test_header_body_mismatch_is_refused(gateway: GatewayProc) -> None:
    call = modern_call("echo", {"text": "x"})
    wrong_method = post(gateway, call, modern_headers("tools/list"))
    assert wrong_method.status_code == 400
    assert wrong_method.json()["error"]["code"] == -32020
    wrong_name = post(gateway, call, modern_headers("tools/call", "add"))
    assert wrong_name.status_code == 400
    assert "Mcp-Name" in wrong_name.json()["error"]["message"]
    matching = post(gateway, call, modern_headers("tools/call", "echo"))
    assert matching.status_code == 200, matching.text
    assert matching.json()["result"]["content"][0]["text"] == "x"


async def test_origin_allowlist(gateway: GatewayProc) -> None:
    evil = post(
        gateway, modern_call("echo", {"text": "x"}), modern_headers("tools/call", "echo", Origin="https://evil")
    )
    assert evil.status_code == 403
    assert "allowedOrigins" in evil.json()["error"]["message"]
    good = post(
        gateway, modern_call("echo", {"text": "x"}), modern_headers("tools/call", "echo", Origin="https://app.example")
    )
    assert good.status_code == 200


async def test_request_size_limit(gateway: GatewayProc) -> None:
    response = post(gateway, modern_call("echo", {"text": "x" * 10_000}), modern_headers("tools/call", "echo"))
    assert response.status_code == 413
    assert "4096" in response.json()["error"]["message"]


async def test_unknown_protocol_version_is_refused(gateway: GatewayProc) -> None:
    meta = {"io.modelcontextprotocol/protocolVersion": "1999-01-01", "io.modelcontextprotocol/clientCapabilities": {}}
    body = rpc("tools/list", {"_meta": meta}, rid=301)
    response = post(gateway, body, {"MCP-Protocol-Version": "1999-01-01", "Mcp-Method": "tools/list"})
    assert response.status_code == 400
    answer = response.json()
    assert answer["id"] == 301
    assert answer["error"]["data"]["requested"] == "1999-01-01"
    assert MODERN in answer["error"]["data"]["supported"]


async def test_forged_session_id_is_404(gateway: GatewayProc) -> None:
    response = post(
        gateway, rpc("tools/list"), {"Mcp-Session-Id": "v1.e30.forged", "MCP-Protocol-Version": "2025-11-25"}
    )
    assert response.status_code == 404
    assert "initialize" in response.json()["error"]["message"]


async def test_both_eras_and_ops_endpoints(gateway: GatewayProc) -> None:
    for mode in ("legacy", "2026-07-28"):
        async with mcp_client(gateway.url("open"), mode=mode) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert {"echo", "add", "slow"} <= tools
            result = await client.call_tool("add", {"a": 2, "b": 3})
            assert result.structured_content == {"a": 2, "b": 3, "sum": 5}
    assert httpx.get(f"{gateway.base}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{gateway.base}/readyz").status_code == 200
    metrics = httpx.get(f"{gateway.base}/metrics", headers=ADMIN_HEADERS).text
    assert 'mcp_gateway_tool_calls_total{outcome="ok",profile="open",tenant="acme",tool="add"} 2.0' in metrics
    assert "mcp_gateway_requests_total" in metrics
    openapi = httpx.get(f"{gateway.base}/openapi.json", headers=ADMIN_HEADERS).json()
    assert "/admin/v1/tenants/{tenant_id}/keys" in openapi["paths"]


async def test_metrics_and_api_document_need_the_admin_token(gateway: GatewayProc) -> None:
    """Metrics name tenants, profiles and tools; the OpenAPI document maps the admin API: not for anyone."""
    for path in ("/metrics", "/openapi.json"):
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            refused = httpx.get(f"{gateway.base}{path}", headers=headers)
            assert refused.status_code == 401, (path, refused.status_code)
            assert refused.headers["www-authenticate"] == "Bearer"
            assert "acme" not in refused.text and "tool" not in refused.text
    # The browsable pages (which could not send the token) are gone.
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        assert httpx.get(f"{gateway.base}{path}", headers=ADMIN_HEADERS).status_code == 404


@pytest.mark.parametrize("content_type", ["text/plain", "application/jsonx", "application/json-seq"])
async def test_non_json_content_type_is_415(gateway: GatewayProc, content_type: str) -> None:
    response = post(gateway, rpc("tools/list"), {"Content-Type": content_type})
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]["message"]
    assert post(gateway, rpc("tools/list"), {"Content-Type": "application/json; charset=utf-8"}).status_code == 200


@pytest.mark.parametrize("token", [None, "Bearer wrong", "Basic YTpi"])
async def test_admin_api_refuses_before_reading_the_body(gateway: GatewayProc, token: str | None) -> None:
    """Without the admin token the answer is 401, whatever the body (never 400/422 from parsing it first)."""
    headers = {"Content-Type": "application/json", **({"Authorization": token} if token else {})}
    for body in (b"\xff\xfe not utf-8", b"{broken", b'{"name": 5}'):
        response = httpx.post(f"{gateway.base}/admin/v1/tenants/acme/keys", content=body, headers=headers)
        assert response.status_code == 401, (body, response.status_code, response.text)
        assert response.headers["www-authenticate"] == "Bearer"


async def test_metrics_on_a_separate_port(spawn: Spawn, feature: str, tmp_path: Any) -> None:
    config = write_config(
        tmp_path / "routing.yaml",
        {
            "tenants": [{"id": "acme"}],
            "profiles": [profile("open", "acme", [("feat", feature)], auth={"mode": "none"})],
        },
    )
    metrics_port = free_port()
    gateway = start_gateway(spawn, config, name="gw-metrics-port", args=["--metrics-port", str(metrics_port)])
    assert post(gateway, rpc("ping")).status_code == 200
    assert httpx.get(f"{gateway.base}/metrics").status_code == 404  # not on the public port
    scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
    assert scraped.status_code == 200
    assert 'mcp_gateway_requests_total{method="ping",profile="open",status="200",tenant="acme"} 1.0' in scraped.text
    assert gateway.process.stop(grace=8) != -9  # SIGTERM stops both servers (no SIGKILL needed)
