"""OpenAPI and hand-declared HTTP sources: a real FastAPI service and a real large public document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.adapter.support import PYTHON, ROOT, connect, start_adapter
from tests.support.processes import free_port

ITEMS_API = str(ROOT / "tests" / "adapter" / "servers" / "items_api.py")
KUBE_SPEC = str(ROOT / "tests" / "data" / "kubernetes-core-v1-openapi.json")
TOKEN = "items-token-0123456789"


@pytest.fixture
def items_api(spawn: Any) -> str:
    port = free_port()
    spawn(
        [PYTHON, ITEMS_API, "--port", str(port)],
        name="items-api",
        env={"ITEMS_TOKEN": TOKEN},
        ready_url=f"http://127.0.0.1:{port}/openapi.json",
    )
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_openapi_operations_become_tools(spawn: Any, tmp_path: Path, items_api: str, mode: str) -> None:
    source = {
        "name": "items",
        "type": "openapi",
        "spec": f"{items_api}/openapi.json",
        "allowPrivateNetwork": True,
        "auth": {"type": "bearer", "token": {"fromEnv": "ITEMS_API_TOKEN"}},
        "exclude": {"tags": ["admin"]},
    }
    adapter = start_adapter(spawn, tmp_path, [source], env={"ITEMS_API_TOKEN": TOKEN})
    async with connect(adapter.mcp_url, mode) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        assert set(tools) == {"getItem", "listItems", "createItem"}  # resetAll excluded by tag
        create_schema = tools["createItem"].input_schema
        assert create_schema["required"] == ["body"]
        assert create_schema["properties"]["body"] == {"$ref": "#/$defs/NewItem"}
        assert set(create_schema["$defs"]["NewItem"]["properties"]) == {"name", "tags"}
        assert tools["getItem"].description == "Read one item"

        got = await c.call_tool("getItem", {"item_id": 1})
        assert not got.is_error
        assert got.structured_content == {"id": 1, "name": "hammer", "tags": ["tool"]}

        created = await c.call_tool("createItem", {"body": {"name": "saw", "tags": ["tool", "sharp"]}})
        assert created.structured_content is not None and created.structured_content["name"] == "saw"
        listed = await c.call_tool("listItems", {"tag": "sharp"})
        assert listed.structured_content == {"result": [created.structured_content]}

        missing = await c.call_tool("getItem", {"item_id": 999})
        assert missing.is_error
        assert "HTTP 404" in missing.content[0].text and "item 999 does not exist" in missing.content[0].text  # type: ignore[union-attr]
    assert TOKEN not in adapter.process.log_text()
    async with httpx.AsyncClient() as http:
        assert TOKEN not in (await http.get(f"{adapter.url}/map")).text


async def test_private_network_is_refused_by_default(spawn: Any, tmp_path: Path, items_api: str) -> None:
    source = {"name": "items", "type": "openapi", "spec": f"{items_api}/openapi.json", "prefixPolicy": "always"}
    adapter = start_adapter(spawn, tmp_path, [source])
    async with connect(adapter.mcp_url, "legacy") as c:
        refused = await c.call_tool("items__getItem", {"item_id": 1})
    assert refused.is_error
    assert "allowPrivateNetwork" in refused.content[0].text  # type: ignore[union-attr]


async def test_hand_declared_http_tools(spawn: Any, tmp_path: Path, items_api: str) -> None:
    source = {
        "name": "hand",
        "type": "http",
        "baseUrl": items_api,
        "allowPrivateNetwork": True,
        "headers": {"Authorization": {"fromEnv": "ITEMS_API_TOKEN", "prefix": "Bearer "}},
        "tools": [
            {
                "name": "item_by_id",
                "description": "Fetch an item",
                "url": "/items/{id}",
                "inputSchema": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]},
            },
            {
                "name": "new_item",
                "method": "POST",
                "url": "/items",
                "inputSchema": {"type": "object", "properties": {"title": {"type": "string"}}},
                "body": {"name": "title"},
            },
        ],
    }
    adapter = start_adapter(spawn, tmp_path, [source], env={"ITEMS_API_TOKEN": TOKEN})
    async with connect(adapter.mcp_url, "2026-07-28") as c:
        got = await c.call_tool("item_by_id", {"id": 1})
        assert got.structured_content is not None and got.structured_content["name"] == "hammer"
        made = await c.call_tool("new_item", {"title": "chisel"})
        assert made.structured_content is not None and made.structured_content["name"] == "chisel"


async def test_large_public_document_is_paginated(spawn: Any, tmp_path: Path) -> None:
    source = {"name": "k8s", "type": "openapi", "spec": KUBE_SPEC, "baseUrl": "https://kubernetes.invalid"}
    adapter = start_adapter(spawn, tmp_path, [source], server={"pageSize": 50})
    names: list[str] = []
    async with connect(adapter.mcp_url, "legacy") as c:
        cursor = None
        pages = 0
        for _ in range(100):
            page = await c.list_tools(cursor=cursor)
            pages += 1
            names += [t.name for t in page.tools]
            if "createCoreV1NamespacedPod" in [t.name for t in page.tools]:
                pod = next(t for t in page.tools if t.name == "createCoreV1NamespacedPod")
                assert pod.input_schema["required"] == ["namespace", "body"]
                assert pod.input_schema["properties"]["body"] == {"$ref": "#/$defs/io.k8s.api.core.v1.Pod"}
                assert "io.k8s.api.core.v1.PodSpec" in pod.input_schema["$defs"]
            cursor = page.next_cursor
            if cursor is None:
                break
    assert len(names) == len(set(names)) == 248
    assert pages >= 5  # at most 50 per page, fewer where schemas are large
