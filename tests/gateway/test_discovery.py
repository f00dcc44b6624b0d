"""Discovery mode `search` through the gateway with the real SDK client, in both protocol eras:
meta-tools instead of the catalog, policy-hidden tools unreachable through every meta-tool,
`call_tool` charged, limited and audited as the inner tool, and clear errors for bad input."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.gateway.support import (
    ADMIN_HEADERS,
    MODERN,
    GatewayProc,
    Spawn,
    mcp_client,
    modern_call,
    modern_headers,
    profile,
    start_gateway,
)

ERAS = ["legacy", MODERN]


@pytest.fixture(scope="module")
def gateway(spawn_module: Spawn, feature_module: str, tmp_path_factory: pytest.TempPathFactory) -> GatewayProc:
    path = tmp_path_factory.mktemp("discovery") / "routing.yaml"
    open_profile = {"auth": {"mode": "none"}}
    path.write_text(
        json.dumps(
            {
                "tenants": [{"id": "acme", "limits": {"quota": {"daily": 3}}}, {"id": "free"}],
                "profiles": [
                    profile(
                        "search",
                        "free",
                        [("feat", feature_module)],
                        # `fail` matches alwaysVisible but the policy hides it: it is not listed.
                        discovery={"mode": "search", "alwaysVisible": ["echo", "fail"], "maxResults": 5},
                        policy={"tools": {"deny": ["fail", "protocol_error"]}},
                        limits={"toolTimeouts": {"slow": 0.5}},
                        **open_profile,
                    ),
                    profile("quota", "acme", [("feat", feature_module)], discovery={"mode": "search"}, **open_profile),
                    profile("plain", "free", [("feat", feature_module)], **open_profile),
                    profile(
                        "hybrid",
                        "free",
                        [("feat", feature_module)],
                        discovery={"mode": "hybrid", "alwaysVisible": ["echo"]},
                        policy={"tools": {"deny": ["fail"]}},
                        **open_profile,
                    ),
                    profile(
                        "reveal",
                        "free",
                        [("feat", feature_module)],
                        discovery={"mode": "search", "reveal": True},
                        **open_profile,
                    ),
                ],
            }
        )
    )
    return start_gateway(spawn_module, path, name="gw-discovery")


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result
    data: dict[str, Any] = result.structured_content
    return data


@pytest.mark.parametrize("mode", ERAS)
async def test_search_mode_lists_meta_tools_and_finds_and_calls(gateway: GatewayProc, mode: str) -> None:
    async with mcp_client(gateway.url("search"), mode=mode) as client:
        listed = [t.name for t in (await client.list_tools()).tools]
        assert listed == ["search_tools", "describe_tools", "call_tool", "echo"]

        found = structured(await client.call_tool("search_tools", {"query": "add two numbers together"}))
        assert found["tools"][0]["name"] == "add"
        assert found["tools"][0]["parameters"] == ["a", "b"]
        assert len(found["tools"]) <= 5

        described = structured(await client.call_tool("describe_tools", {"names": ["add"]}))
        assert described["tools"][0]["inputSchema"]["required"] == ["a", "b"]

        result = await client.call_tool("call_tool", {"name": "add", "arguments": {"a": 2, "b": 40}})
        assert result.structured_content == {"a": 2, "b": 40, "sum": 42}
        # A listed tool is still called directly.
        echoed = await client.call_tool("echo", {"text": "hi"})
        assert echoed.content[0].text == "hi"  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ERAS)
async def test_policy_hidden_tool_is_unreachable_through_every_meta_tool(gateway: GatewayProc, mode: str) -> None:
    async with mcp_client(gateway.url("search"), mode=mode) as client:
        found = structured(await client.call_tool("search_tools", {"query": "fail with a tool error"}))
        assert "fail" not in [t["name"] for t in found["tools"]]
        found = structured(await client.call_tool("search_tools", {"query": "protocol error"}))
        assert "protocol_error" not in [t["name"] for t in found["tools"]]
        with pytest.raises(MCPError) as described:
            await client.call_tool("describe_tools", {"names": ["fail"]})
        assert "unknown tools ['fail']" in described.value.error.message
        with pytest.raises(MCPError) as called:
            await client.call_tool("call_tool", {"name": "fail", "arguments": {}})
        assert "unknown tool 'fail'" in called.value.error.message
        # The same answer as for a tool that does not exist: hidden tools are not revealed.
        with pytest.raises(MCPError) as missing:
            await client.call_tool("call_tool", {"name": "no_such_tool"})
        assert missing.value.error.message == called.value.error.message.replace("'fail'", "'no_such_tool'")


@pytest.mark.parametrize("mode", ERAS)
async def test_call_tool_mirrors_the_inner_tool_s_header_arguments(gateway: GatewayProc, mode: str) -> None:
    """A 2026-07-28 tool with `x-mcp-header` arguments needs them as Mcp-Param-* headers; the client
    mirrored call_tool's (none), so the rewrite adds the inner tool's (else the upstream refuses)."""
    async with mcp_client(gateway.url("search"), mode=mode) as client:
        arguments = {"name": "test_custom_header_echo", "arguments": {"region": "eu-west-1"}}
        result = await client.call_tool("call_tool", arguments)
    assert result.content[0].text == "region=eu-west-1"  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ERAS)
async def test_call_tool_applies_the_inner_tool_s_timeout(gateway: GatewayProc, mode: str) -> None:
    async with mcp_client(gateway.url("search"), mode=mode) as client:
        with pytest.raises(MCPError) as timed_out:
            await client.call_tool("call_tool", {"name": "slow", "arguments": {"seconds": 3}})
    assert "tool 'slow' timed out after 0.5 s" in timed_out.value.error.message


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("search_tools", {"query": ""}, "query is empty"),
        ("search_tools", {"query": "x" * 5000}, "keep it under 1000"),
        ("search_tools", {"query": "the of and"}, "no searchable words"),
        ("search_tools", {"query": 7}, "query must be a string"),
        ("search_tools", {"query": "echo", "limit": 99}, "limit must be an integer from 1 to 5"),
        ("describe_tools", {"names": []}, "names must be a non-empty list"),
        ("call_tool", {"name": "add", "arguments": "a=1"}, "arguments must be an object"),
        ("call_tool", {"arguments": {}}, "name (the tool to run)"),
    ],
)
def test_bad_meta_tool_input_is_a_clear_jsonrpc_error(
    gateway: GatewayProc, tool: str, arguments: dict[str, Any], expected: str
) -> None:
    response = httpx.post(
        gateway.url("search"), json=modern_call(tool, arguments), headers=modern_headers("tools/call", tool)
    )
    assert response.status_code == 200
    error = response.json()["error"]
    assert error["code"] == -32602
    assert expected in error["message"]


def test_call_tool_with_malformed_inner_arguments_is_the_tool_s_own_error(gateway: GatewayProc) -> None:
    body = modern_call("call_tool", {"name": "add", "arguments": {"a": "two"}})
    response = httpx.post(gateway.url("search"), json=body, headers=modern_headers("tools/call", "call_tool"))
    assert response.status_code == 200
    payload = response.json()
    # Exactly what a direct call of `add` with these arguments answers.
    direct = httpx.post(
        gateway.url("plain"), json=modern_call("add", {"a": "two"}), headers=modern_headers("tools/call", "add")
    )
    expected = direct.json()["result"]
    assert payload["result"]["isError"] is True
    assert payload["result"]["content"] == expected["content"]


@pytest.mark.parametrize("mode", ERAS)
async def test_call_tool_is_charged_and_audited_as_the_inner_tool(gateway: GatewayProc, mode: str) -> None:
    # The quota profile's tenant allows 3 tool calls a day (the test for each era uses its own day's share).
    async with mcp_client(gateway.url("quota"), mode=mode) as client:
        for _ in range(5):  # searches are rate limited but never charged to the quota
            structured(await client.call_tool("search_tools", {"query": "echo text"}))
        with gateway.admin() as admin:
            before = admin.get("/admin/v1/tenants/acme/usage").json()
        used_before = (
            next(c["used"] for c in before["counters"] if c["period"].startswith("d:")) if before["counters"] else 0
        )
        outcomes = []
        for i in range(3):
            try:
                await client.call_tool("call_tool", {"name": "echo", "arguments": {"text": f"n{i}"}})
                outcomes.append("ok")
            except MCPError as exc:
                outcomes.append(exc.error.message)
        assert outcomes[: 3 - used_before] == ["ok"] * (3 - used_before)
        assert all("daily quota of 3 tool calls for tenant:acme" in o for o in outcomes[3 - used_before :])
    with gateway.admin() as admin:
        audit = admin.get("/admin/v1/audit", params={"limit": 100}).json()["items"]
    tools = {item["tool"] for item in audit if item["profile"] == "quota"}
    assert tools == {"echo"}  # the inner tool, never call_tool or search_tools
    metrics = httpx.get(f"{gateway.base}/metrics", headers=ADMIN_HEADERS).text
    assert 'tool="echo"' in metrics
    assert 'tool="call_tool"' not in metrics
    searches = 'mcp_gateway_discovery_requests_total{meta="search_tools",outcome="ok",profile="quota",tenant="acme"}'
    assert searches in metrics


async def test_discovery_off_lists_every_tool(gateway: GatewayProc) -> None:
    async with mcp_client(gateway.url("plain")) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert {"echo", "add", "fail"} <= names
    assert "search_tools" not in names


@pytest.mark.parametrize("mode", ERAS)
async def test_hybrid_mode_gives_the_full_list_only_to_clients_that_ask(gateway: GatewayProc, mode: str) -> None:
    """`hybrid`: the header or `?tools=all` on the URL asks for the full list, in either era; others get
    the meta-tools. Both kinds can search and call, and the policy-hidden `fail` stays out of reach."""
    meta_only = ["search_tools", "describe_tools", "call_tool", "echo"]
    full_header = {"X-MCP-Gateway-Tools": "all"}
    async with (
        mcp_client(gateway.url("hybrid"), mode=mode) as default,
        mcp_client(gateway.url("hybrid"), headers=full_header, mode=mode) as by_header,
        mcp_client(gateway.url("hybrid") + "?tools=all", mode=mode) as by_url,
        mcp_client(gateway.url("plain"), mode=mode) as plain,
    ):
        assert [t.name for t in (await default.list_tools()).tools] == meta_only
        everything = sorted(t.name for t in (await plain.list_tools()).tools)
        for client in (by_header, by_url):
            listed = sorted(t.name for t in (await client.list_tools()).tools)
            assert listed == sorted(set(everything) - {"fail"})  # as with discovery off, policy applied
        for client in (default, by_header, by_url):
            found = structured(await client.call_tool("search_tools", {"query": "fail with a tool error"}))
            assert "fail" not in [t["name"] for t in found["tools"]]
            with pytest.raises(MCPError, match="unknown tool 'fail'"):
                await client.call_tool("call_tool", {"name": "fail", "arguments": {}})
            summed = await client.call_tool("call_tool", {"name": "add", "arguments": {"a": 1, "b": 1}})
            assert summed.structured_content == {"a": 1, "b": 1, "sum": 2}
        assert (await by_url.call_tool("add", {"a": 2, "b": 2})).structured_content == {"a": 2, "b": 2, "sum": 4}
        with pytest.raises(MCPError):
            await by_header.call_tool("fail", {})  # listed nowhere, and refused when called directly


def test_cli_and_admin_search_show_what_a_caller_would_find(gateway: GatewayProc) -> None:
    from tests.gateway.support import ADMIN_TOKEN
    from tests.gateway.test_cli import cli

    env = {"MCP_GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN, "MCP_GATEWAY_URL": gateway.base}
    shown = cli("tools", "search", "--search", "add two integers", "--limit", "3", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "Profile search (discovery search, ranked lexical)" in shown.stdout
    assert shown.stdout.splitlines()[2].split()[1] == "add"  # title, header, then the best hit
    as_json = json.loads(cli("tools", "plain", "--search", "fail", "-o", "json", env=env).stdout)
    assert as_json["mode"] == "off" and as_json["tools"][0]["name"] == "fail"
    hidden = json.loads(cli("tools", "search", "--search", "fail", "-o", "json", env=env).stdout)
    assert "fail" not in [t["name"] for t in hidden["tools"]]  # the policy applies here too
    refused = cli("tools", "search", "--search", "   ", env=env)
    assert refused.returncode == 1
    assert "query is empty" in refused.stderr


async def test_search_follows_upstream_list_changed(gateway: GatewayProc) -> None:
    async with mcp_client(gateway.url("search")) as client:
        before = structured(await client.call_tool("search_tools", {"query": "zebra crossing"}))
        assert before["tools"] == []
        await client.call_tool("call_tool", {"name": "add_tool", "arguments": {"name": "zebra_crossing"}})
        found: list[str] = []
        for _ in range(50):  # the upstream's list_changed reaches the gateway, which re-lists
            found = [t["name"] for t in structured(await client.call_tool("search_tools", {"query": "zebra"}))["tools"]]
            if found:
                break
            await asyncio.sleep(0.1)
        assert found == ["zebra_crossing"]
        result = await client.call_tool("call_tool", {"name": "zebra_crossing", "arguments": {"text": "hi"}})
        assert result.content[0].text == "zebra_crossing: hi"  # type: ignore[union-attr]
        await client.call_tool("call_tool", {"name": "remove_tool", "arguments": {"name": "zebra_crossing"}})


async def test_reveal_adds_found_tools_to_a_handshake_session_and_announces_it(gateway: GatewayProc) -> None:
    from mcp_types import ToolListChangedNotification

    from tests.gateway.test_notifications import Inbox, wait_streams

    inbox = Inbox()
    async with (
        mcp_client(gateway.url("reveal"), message_handler=inbox) as session,
        mcp_client(gateway.url("reveal"), mode=MODERN) as stateless,
    ):
        assert [t.name for t in (await session.list_tools()).tools] == ["search_tools", "describe_tools", "call_tool"]
        await wait_streams(gateway, 1)
        found = structured(await session.call_tool("search_tools", {"query": "add two integers", "limit": 1}))
        assert [t["name"] for t in found["tools"]] == ["add"]
        await inbox.wait_for(ToolListChangedNotification)
        names = [t.name for t in (await session.list_tools(cache_mode="refresh")).tools]
        assert names == ["search_tools", "describe_tools", "call_tool", "add"]
        assert (await session.call_tool("add", {"a": 1, "b": 2})).structured_content == {"a": 1, "b": 2, "sum": 3}

        # A stateless client has no session to reveal into: its list stays the meta-tools.
        structured(await stateless.call_tool("search_tools", {"query": "echo text"}))
        listed = [t.name for t in (await stateless.list_tools(cache_mode="refresh")).tools]
        assert listed == ["search_tools", "describe_tools", "call_tool"]
    # Another session starts with the meta-tools only.
    async with mcp_client(gateway.url("reveal")) as fresh:
        assert [t.name for t in (await fresh.list_tools()).tools] == ["search_tools", "describe_tools", "call_tool"]
