"""Tool policy, rate limits and quotas - including two gateway processes sharing one
PostgreSQL quota and never admitting more calls than it allows."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.gateway.support import (
    ADMIN_HEADERS,
    Spawn,
    mcp_client,
    modern_call,
    modern_headers,
    profile,
    start_gateway,
)


async def hammer(urls: list[str], calls: int) -> list[httpx.Response]:
    """`calls` concurrent tools/call requests spread over `urls`."""
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=100)) as http:
        jobs = [
            http.post(
                urls[i % len(urls)],
                json=modern_call("echo", {"text": str(i)}, i),
                headers=modern_headers("tools/call", "echo"),
            )
            for i in range(calls)
        ]
        return list(await asyncio.gather(*jobs))


async def test_shared_quota_is_exact_across_two_gateways(
    spawn: Spawn, feature: str, routing: Callable[[dict[str, Any]], Path], pg_dsn: str
) -> None:
    quota = 40
    config = routing(
        {
            "tenants": [{"id": "acme", "limits": {"quota": {"daily": quota, "monthly": 1000}}}],
            "profiles": [profile("open", "acme", [("feat", feature)], auth={"mode": "none"})],
        }
    )
    first = start_gateway(spawn, config, dsn=pg_dsn, name="gw-a")
    second = start_gateway(spawn, config, dsn=pg_dsn, name="gw-b")
    calls = 3 * quota
    responses = await hammer([first.url("open"), second.url("open")], calls)
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(ok) == quota, [r.text for r in responses if r.status_code not in (200, 429)]
    assert len(ok) + len(refused) == calls
    # The quota was contended: both replicas admitted calls (hammer sends even calls to the first).
    by_first = sum(r.status_code == 200 for r in responses[0::2])
    by_second = sum(r.status_code == 200 for r in responses[1::2])
    assert by_first > 0 and by_second > 0, (by_first, by_second)
    assert all("result" in r.json() for r in ok)
    sample = refused[0]
    assert int(sample.headers["Retry-After"]) > 0
    error = sample.json()["error"]
    assert f"daily quota of {quota} tool calls for tenant:acme" in error["message"]
    assert error["data"]["kind"] == "quota"
    # Usage is visible to the admin API.
    with first.admin() as admin:
        usage = admin.get("/admin/v1/tenants/acme/usage").json()
    daily = next(c for c in usage["counters"] if c["period"].startswith("d:"))
    assert daily["used"] == quota
    metrics = (
        httpx.get(f"{first.base}/metrics", headers=ADMIN_HEADERS).text
        + httpx.get(f"{second.base}/metrics", headers=ADMIN_HEADERS).text
    )
    assert 'mcp_gateway_limit_rejections_total{kind="quota",profile="open",tenant="acme"}' in metrics


async def test_rate_limit_per_key(spawn: Spawn, feature: str, routing: Callable[[dict[str, Any]], Path]) -> None:
    config = routing(
        {
            "tenants": [{"id": "acme"}],
            "profiles": [
                profile(
                    "open",
                    "acme",
                    [("feat", feature)],
                    auth={"mode": "none"},
                    limits={"perKeyRate": {"perSecond": 0.1, "burst": 3}},  # 10 s per refill: margin when slow
                )
            ],
        }
    )
    gateway = start_gateway(spawn, config)
    statuses = []
    for i in range(5):
        response = httpx.post(
            gateway.url("open"),
            json=modern_call("echo", {"text": "x"}, i),
            headers=modern_headers("tools/call", "echo"),
        )
        statuses.append(response.status_code)
    assert statuses[:3] == [200, 200, 200]
    assert statuses[3] == 429
    last = httpx.post(
        gateway.url("open"), json=modern_call("echo", {"text": "x"}), headers=modern_headers("tools/call", "echo")
    )
    assert last.status_code == 429
    assert 1 <= int(last.headers["Retry-After"]) <= 10
    assert "rate limit exceeded: caller:open:anonymous" in last.json()["error"]["message"]


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_policy_hides_and_refuses(
    spawn: Spawn, feature: str, routing: Callable[[dict[str, Any]], Path], mode: str
) -> None:
    policy = {
        "tools": {"allow": ["echo", "add", "s*"], "deny": ["slow"]},
        "prompts": {"allow": [], "deny": ["*"]},
    }
    config = routing(
        {
            "tenants": [{"id": "acme"}],
            "profiles": [profile("open", "acme", [("feat", feature)], auth={"mode": "none"}, policy=policy)],
        }
    )
    gateway = start_gateway(spawn, config)
    async with mcp_client(gateway.url("open"), mode=mode) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"echo", "add", "sample_llm"} <= names
        assert "slow" not in names and "whoami" not in names and "fail" not in names
        assert (await client.list_prompts()).prompts == []
        for hidden in ("slow", "whoami"):
            with pytest.raises(MCPError) as refused:
                await client.call_tool(hidden, {})
            assert "policy" in refused.value.error.message
            assert hidden in refused.value.error.message
        assert (await client.call_tool("echo", {"text": "ok"})).content[0].text == "ok"  # type: ignore[union-attr]


async def test_caller_quota_is_per_profile(
    spawn: Spawn, feature: str, routing: Callable[[dict[str, Any]], Path]
) -> None:
    """`profile.limits.quota` is that profile's allowance per caller: using one profile does not spend another's."""
    quota = {"quota": {"daily": 2}}
    config = routing(
        {
            "tenants": [{"id": "acme"}],
            "profiles": [
                profile("dev", "acme", [("feat", feature)], limits=quota),
                profile("prod", "acme", [("feat", feature)], limits=quota),
            ],
        }
    )
    gateway = start_gateway(spawn, config)
    with gateway.admin() as admin:
        key = admin.post("/admin/v1/tenants/acme/keys", json={"name": "both"}).json()["key"]
    headers = {**modern_headers("tools/call", "echo"), "Authorization": f"Bearer {key}"}

    def call(pid: str) -> int:
        return httpx.post(gateway.url(pid), json=modern_call("echo", {"text": "x"}), headers=headers).status_code

    assert [call("dev"), call("dev"), call("prod"), call("prod")] == [200, 200, 200, 200]
    refused = httpx.post(gateway.url("dev"), json=modern_call("echo", {"text": "x"}), headers=headers)
    assert refused.status_code == 429
    assert ":dev:key:" in refused.json()["error"]["message"]  # the counter names the profile
    with gateway.admin() as admin:
        usage = admin.get("/admin/v1/tenants/acme/usage").json()["counters"]
    assert sorted(c["used"] for c in usage if c["period"].startswith("d:")) == [2, 2]
