"""Hand-declared HTTP tools from an Upstream's `spec.http`: the operator's rendering of the spec
runs in a real adapter, and the tools call a real HTTP service with the Secret-fed token."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcp_operator import adapter_config

from tests.adapter.support import PYTHON, ROOT, connect
from tests.support.processes import free_port

ITEMS_API = str(ROOT / "tests" / "adapter" / "servers" / "items_api.py")
TOKEN = "items-token-from-a-secret"


@pytest.fixture
def items_api(spawn: Any) -> str:
    port = free_port()
    spawn([PYTHON, ITEMS_API, "--port", str(port)], name="items-api", env={"ITEMS_TOKEN": TOKEN},
          ready_url=f"http://127.0.0.1:{port}/openapi.json")  # fmt: skip
    return f"http://127.0.0.1:{port}"


def _upstream_spec(base_url: str) -> dict[str, Any]:
    return {
        "http": {
            "baseUrl": base_url,
            "allowPrivateNetwork": True,  # the test service listens on loopback
            "auth": {"type": "bearer", "secretName": "items-creds"},
            "tools": [
                {
                    "name": "get_item",
                    "description": "Read one item by id",
                    "url": "/items/{item_id}",
                    "inputSchema": {"type": "object", "properties": {"item_id": {"type": "integer"}},
                                    "required": ["item_id"]},
                },
                {
                    "name": "find_items",
                    "url": "/items",
                    "inputSchema": {"type": "object", "properties": {"tag": {"type": "string"}}},
                    "query": ["tag"],
                },
                {
                    "name": "add_item",
                    "method": "POST",
                    "url": "/items",
                    "inputSchema": {"type": "object", "properties": {"title": {"type": "string"}}},
                    "bodyFields": {"name": "title"},
                },
            ],
        }
    }  # fmt: skip


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_http_tools_declared_in_an_upstream_work_through_the_adapter(
    spawn: Any, tmp_path: Path, items_api: str, mode: str
) -> None:
    inputs = adapter_config.build("items", "acme-tools", _upstream_spec(items_api))
    # What the Deployment would give the pod: each Secret reference as an env var.
    (token_var,) = inputs.env
    assert token_var["valueFrom"]["secretKeyRef"] == {"name": "items-creds", "key": "token"}
    config = tmp_path / "adapter.yaml"
    config.write_text(yaml.safe_dump(inputs.config))
    port = free_port()
    spawn([sys.executable, "-m", "mcp_adapter.cli", "--config", str(config), "--port", str(port)], name="adapter",
          env={token_var["name"]: TOKEN}, ready_url=f"http://127.0.0.1:{port}/readyz", timeout=60)  # fmt: skip

    async with connect(f"http://127.0.0.1:{port}/mcp", mode) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == {"get_item", "find_items", "add_item"}
        assert tools["get_item"].description == "Read one item by id"
        item = await client.call_tool("get_item", {"item_id": 1})
        assert not item.is_error
        assert json.loads(item.content[0].text)["name"] == "hammer"  # type: ignore[union-attr]
        missing = await client.call_tool("get_item", {"item_id": 999})
        assert missing.is_error and "404" in missing.content[0].text  # type: ignore[union-attr]
        added = await client.call_tool("add_item", {"title": f"saw-{mode}"})
        assert json.loads(added.content[0].text)["name"] == f"saw-{mode}"  # type: ignore[union-attr]
        found = await client.call_tool("find_items", {"tag": "tool"})
        assert [i["name"] for i in json.loads(found.content[0].text)] == ["hammer"]  # type: ignore[union-attr]
