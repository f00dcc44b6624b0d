"""`scope: per-caller` upstreams behind the gateway: each gateway caller gets its own upstream
session (here: its own stdio child of the adapter), so no state leaks between API keys or tenants."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import yaml

from tests.gateway.support import GatewayProc, Spawn, mcp_client, profile, start_gateway
from tests.servers.launch import stdio_command
from tests.support.processes import free_port

WATCHED = "test://watched-resource"


def start_per_caller_adapter(spawn: Spawn, folder: Path) -> str:
    """An adapter trusting the gateway's caller header, one feature-server child per caller."""
    command, *args = stdio_command()
    source = {"name": "feat", "type": "stdio", "command": command, "args": args, "scope": "per-caller"}
    config = folder / "adapter-per-caller.yaml"
    config.write_text(yaml.safe_dump({"server": {"trustCallerHeader": True}, "sources": [source]}))
    port = free_port()
    cmd = [sys.executable, "-m", "mcp_adapter.cli", "--config", str(config), "--port", str(port)]
    spawn(cmd, name="adapter-per-caller", ready_url=f"http://127.0.0.1:{port}/readyz", timeout=60)
    return f"http://127.0.0.1:{port}"


def caller_aware(profile_doc: dict[str, Any]) -> dict[str, Any]:
    """The profile with `sendCallerHeader: true` on its upstreams (as the operator renders its adapters)."""
    for upstream in profile_doc["upstreams"]:
        upstream["sendCallerHeader"] = True
    return profile_doc


def new_key(gateway: GatewayProc, tenant: str) -> dict[str, str]:
    with gateway.admin() as admin:
        created = admin.post(f"/admin/v1/tenants/{tenant}/keys", json={"name": tenant})
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['key']}"}


async def read_watched(url: str, headers: dict[str, str], mode: str) -> str:
    async with mcp_client(url, headers, mode=mode) as client:
        content = (await client.read_resource(WATCHED)).contents[0]
    assert isinstance(content, types.TextResourceContents)
    return content.text


async def test_each_gateway_caller_gets_its_own_upstream_session(
    spawn: Spawn, tmp_path: Path, routing: Callable[[dict[str, Any]], Path]
) -> None:
    adapter = start_per_caller_adapter(spawn, tmp_path)
    config = routing(
        {
            "tenants": [{"id": "acme"}, {"id": "globex"}],
            "profiles": [
                caller_aware(profile("acme-dev", "acme", [("feat", f"{adapter}/mcp")])),
                caller_aware(profile("gx-dev", "globex", [("feat", f"{adapter}/mcp")])),
            ],
        }
    )
    gateway = start_gateway(spawn, config)
    alice, bob, carol = new_key(gateway, "acme"), new_key(gateway, "acme"), new_key(gateway, "globex")

    # The feature server speaks both eras, so the adapter keeps a child per caller *and* era.
    for mode in ("2026-07-28", "legacy"):
        async with mcp_client(gateway.url("acme-dev"), alice, mode=mode) as client:
            await client.call_tool("update_resource", {"text": f"alice's secret ({mode})"})
        assert await read_watched(gateway.url("acme-dev"), alice, mode) == f"alice's secret ({mode})"
        # Another key of the same tenant, and a key of another tenant, see their own (untouched) state.
        assert "alice" not in await read_watched(gateway.url("acme-dev"), bob, mode)
        assert "alice" not in await read_watched(gateway.url("gx-dev"), carol, mode)

    async with httpx.AsyncClient(timeout=10) as http:
        status = (await http.get(f"{adapter}/map")).json()["sources"]["feat"]
    assert status["callers"] == 3  # alice, bob, carol: one child each (plus the catalog session)
