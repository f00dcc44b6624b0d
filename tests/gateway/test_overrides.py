"""Tool overrides through a real gateway and upstream: rename, title/description, annotations and
fixed hidden arguments, in both eras; policy sees both names; the audit records the real name."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp_gateway.config import parse_config

from tests.gateway.support import ADMIN_TOKEN, MODERN, Spawn, mcp_client, start_gateway
from tests.gateway.test_cli import cli

OVERRIDES = {
    "echo": {
        "name": "say",
        "title": "Say it",
        "description": "Repeats the text back",
        "annotations": {"readOnlyHint": True, "openWorldHint": False},
    },
    "add": {"fixedArguments": {"b": 10}},
}


def upstream(url: str, overrides: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": "feat", "url": url, "toolOverrides": overrides}]


async def test_overrides_rename_describe_annotate_and_fill_in_arguments(
    spawn: Spawn, feature: str, routing: Callable[[dict[str, Any]], Path]
) -> None:
    config = routing(
        {
            "tenants": [{"id": "acme"}],
            "profiles": [
                {"id": "ov", "tenant": "acme", "upstreams": upstream(feature, OVERRIDES), "auth": {"mode": "none"}},
                {
                    "id": "ov-deny",
                    "tenant": "acme",
                    "upstreams": upstream(feature, OVERRIDES),
                    "auth": {"mode": "none"},
                    "policy": {"tools": {"deny": ["echo"]}},  # the upstream's name hides the renamed tool
                },
                {
                    "id": "clash",
                    "tenant": "acme",
                    "upstreams": upstream(feature, {"echo": {"name": "slow"}}),  # `slow` is the upstream's own
                    "auth": {"mode": "none"},
                },
            ],
        }
    )
    gateway = start_gateway(spawn, config)
    for mode in ("legacy", MODERN):
        async with mcp_client(gateway.url("ov"), mode=mode) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert "echo" not in tools
            say = tools["say"]
            assert say.title == "Say it" and say.description == "Repeats the text back"
            assert say.annotations is not None and say.annotations.read_only_hint is True
            assert say.annotations.open_world_hint is False
            assert "b" not in tools["add"].input_schema["properties"]
            assert "b" not in tools["add"].input_schema.get("required", [])

            said = await client.call_tool("say", {"text": f"hi {mode}"})
            assert said.content[0].text == f"hi {mode}"  # type: ignore[union-attr]
            added = await client.call_tool("add", {"a": 2, "b": 99})  # a client's value for a fixed one is replaced
            assert added.structured_content == {"a": 2, "b": 10, "sum": 12}
            unknown = await client.call_tool("echo", {"text": "x"})
            assert unknown.is_error

    async with mcp_client(gateway.url("ov-deny")) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert "say" not in names and "echo" not in names and "add" in names

    async with mcp_client(gateway.url("clash")) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"echo", "slow"} <= names  # the clashing rename is refused; both keep their names
    log = gateway.process.log_text()
    assert "cannot be renamed to 'slow'" in log

    with gateway.admin() as admin:
        records = admin.get("/admin/v1/audit", params={"profile": "ov"}).json()["items"]
        listed = {t["name"]: t for t in admin.get("/admin/v1/profiles/ov-deny/tools").json()["tools"]}
    tools_audited = {r["tool"] for r in records}
    assert "echo" in tools_audited and "say" not in tools_audited  # the upstream's real name
    assert listed["say"]["upstreamName"] == "echo" and listed["say"]["allowed"] is False
    assert listed["add"]["upstreamName"] is None and listed["add"]["allowed"] is True

    shown = cli("tools", "ov-deny", env={"MCP_GATEWAY_URL": gateway.base, "MCP_GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN})
    assert shown.returncode == 0, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if line.startswith("say "))
    assert "(upstream: echo)" in row and "hidden" in row


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"echo": {"name": "x"}, "add": {"name": "x"}}, "would name both 'echo' and 'add' 'x'"),
        ({"echo": {"name": "add"}, "add": {"title": "Add"}}, "would name both 'echo' and 'add' 'add'"),
        ({"echo": {"name": "bad name"}}, "SEP-986"),
        ({"echo": {"annotations": {"readOnly": True}}}, "readOnly"),
    ],
)
def test_override_config_errors_name_both_sides(overrides: dict[str, Any], message: str) -> None:
    document = {
        "tenants": [{"id": "acme"}],
        "profiles": [{"id": "p", "tenant": "acme", "upstreams": upstream("http://127.0.0.1:1/mcp", overrides)}],
    }
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        parse_config(json.dumps(document))
