"""The profile page's quota table and tool-call chart count the same calls.

Reported: after three `tools/call` requests the upstream rejected with -32602, the quota
table said "used 3" while the chart said "0 calls". Every admitted call, failed or not,
counts in both; calls refused before admission count in neither.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.console.support import Stack, http_login
from tests.gateway.support import ADMIN_TOKEN, Spawn, mcp_client, start_feature, start_gateway, write_config

ROW = re.compile(r"<tr><td><code>([^<]+)</code></td><td>today</td><td>(\d+)</td>")


def _quota_used(page: str) -> dict[str, int]:
    table = re.search(r'<table id="quota-usage">.*?</table>', page, re.S)
    assert table, page
    return {scope.split(":key:")[0]: int(used) for scope, used in ROW.findall(table.group(0))}


def _chart_total(page: str) -> int:
    total = re.search(r'id="call-total">(\d+) calls? in the last 24h', page)
    assert total, page
    return int(total.group(1))


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_rejected_calls_count_in_quota_and_chart_alike(
    pg_dsn: str, spawn: Spawn, tmp_path: Path, mode: str
) -> None:
    feature = start_feature(spawn)[1]
    routing = {
        "tenants": [{"id": "acme", "limits": {"quota": {"daily": 100}}}],
        "profiles": [
            {"id": "p", "tenant": "acme", "upstreams": [{"name": "feature", "url": feature}],
             "policy": {"tools": {"deny": ["slow"]}}, "limits": {"quota": {"daily": 50}}},
        ],
    }  # fmt: skip
    gateway = start_gateway(spawn, write_config(tmp_path / "routing.yaml", routing), dsn=pg_dsn)
    with gateway.admin() as admin:
        key = admin.post("/admin/v1/tenants/acme/keys", json={"name": "k", "profiles": ["p"]}).json()["key"]
    async with mcp_client(gateway.url("p"), {"Authorization": f"Bearer {key}"}, mode=mode) as client:
        for _ in range(3):  # the upstream rejects the arguments
            with pytest.raises(MCPError) as rejected:
                await client.call_tool("protocol_error", {"code": -32602, "message": "bad params"})
            assert rejected.value.error.code == -32602
        unknown = await client.call_tool("no_such_tool", {})
        assert unknown.is_error
        # A name no audit column should take whole: kept bounded, NUL replaced (PostgreSQL refuses NUL).
        hostile = await client.call_tool("bad\x00" + "x" * 5000, {})
        assert hostile.is_error
        with pytest.raises(MCPError):  # hidden by policy: refused before admission
            await client.call_tool("slow", {"seconds": 0})
        assert (await client.call_tool("echo", {"text": "hi"})).is_error is False

    console = http_login(Stack(gateway, feature, feature), ADMIN_TOKEN)
    page = console.get("/console/profiles/p").text
    assert _quota_used(page) == {"tenant:acme": 6, "caller:acme:p": 6}
    assert _chart_total(page) == 6
    assert "Every admitted tool call counts" in page
    audit = console.get("/console/audit", params={"profile": "p"}).text
    assert "unknown_tool" in audit and "no_such_tool" in audit
    with httpx.Client(base_url=gateway.base, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as admin_api:
        records = admin_api.get("/admin/v1/audit", params={"tenant": "acme", "profile": "p"}).json()["items"]
    outcomes = sorted(r["outcome"] for r in records)
    assert outcomes == ["error", "error", "error", "ok", "unknown_tool", "unknown_tool"]
    long_name = next(r["tool"] for r in records if r["tool"].startswith("bad"))
    assert long_name == "bad\ufffd" + "x" * 124 + "…"
