"""Audit log in PostgreSQL: every tool call recorded with arguments hashed, paged through
the admin API, and no record lost while the database is unreachable."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from tests.gateway.support import GatewayProc, Spawn, TcpProxy, mcp_client, profile, start_gateway


def audit_items(gateway: GatewayProc, **params: Any) -> dict[str, Any]:
    with gateway.admin() as admin:
        response = admin.get("/admin/v1/audit", params=params)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def pending(gateway: GatewayProc) -> float:
    for line in httpx.get(f"{gateway.base}/metrics").text.splitlines():
        if line.startswith("mcp_gateway_audit_pending "):
            return float(line.split()[1])
    return -1


async def test_audit_survives_database_outage(
    spawn: Spawn, feature: str, routing: Callable[[dict[str, Any]], Path], pg_dsn: str
) -> None:
    parts = urlsplit(pg_dsn)
    database = await TcpProxy(parts.port or 5432).start()
    proxied = urlunsplit(parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{database.port}"))
    config = routing(
        {
            "tenants": [{"id": "acme"}],
            "profiles": [profile("open", "acme", [("feat", feature)], auth={"mode": "none"})],
        }
    )
    gateway = start_gateway(spawn, config, dsn=proxied)
    try:
        async with mcp_client(gateway.url("open")) as client:
            for i in range(3):
                await client.call_tool("echo", {"text": f"secret-value-{i}"})
            await client.call_tool("fail", {"message": "boom"})

            database.target_port = None  # the database becomes unreachable
            database.cut()
            for i in range(4):
                await client.call_tool("add", {"a": i, "b": 1})
            deadline = time.monotonic() + 5
            while pending(gateway) < 4 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert pending(gateway) >= 4

        database.target_port = parts.port or 5432
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if len(audit_items(gateway, limit=100)["items"]) == 8:
                    break
            except AssertionError:
                pass
            time.sleep(0.3)
        items = audit_items(gateway, limit=100)["items"]
        assert [i["tool"] for i in items] == ["add"] * 4 + ["fail"] + ["echo"] * 3
        assert {i["outcome"] for i in items} == {"ok", "tool_error"}
        assert all(i["tenant"] == "acme" and i["profile"] == "open" and i["caller"] == "anonymous" for i in items)
        echo = items[-1]
        assert echo["arguments"].startswith("sha256:") and "secret-value" not in str(items)
        assert echo["latencyMs"] > 0

        first_page = audit_items(gateway, limit=5)
        assert len(first_page["items"]) == 5
        second_page = audit_items(gateway, limit=5, before=first_page["nextBefore"])
        assert [i["tool"] for i in second_page["items"]] == ["echo"] * 3
        assert second_page["nextBefore"] is None
        assert len(audit_items(gateway, tool="fail")["items"]) == 1
    finally:
        await database.close()
