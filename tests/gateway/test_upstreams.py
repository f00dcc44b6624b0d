"""A hung upstream times out per the profile's limits, a crashed one gives a clear error,
and neither disturbs the profile's other upstream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.gateway.support import ADMIN_HEADERS, Spawn, mcp_client, start_feature, start_gateway


async def test_hung_and_crashed_upstreams(spawn: Spawn, routing: Callable[[dict[str, Any]], Path]) -> None:
    process_a, url_a = start_feature(spawn, "feature-a")
    process_b, url_b = start_feature(spawn, "feature-b")
    config = routing(
        {
            "tenants": [{"id": "acme", "limits": {"timeoutSeconds": 20}}],
            "profiles": [
                {
                    "id": "two",
                    "tenant": "acme",
                    # `b` is given 2 s to answer or reconnect, so its crash surfaces quickly.
                    "upstreams": [{"name": "a", "url": url_a}, {"name": "b", "url": url_b, "timeoutSeconds": 2}],
                    "auth": {"mode": "none"},
                    "limits": {"toolTimeouts": {"a__slow": 5}},  # margin for b__echo below on a loaded machine
                }
            ],
        }
    )
    gateway = start_gateway(spawn, config)
    async with mcp_client(gateway.url("two")) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"a__echo", "b__echo", "a__slow"} <= names

        async def hung() -> MCPError:
            with pytest.raises(MCPError) as caught:
                await client.call_tool("a__slow", {"seconds": 30})
            return caught.value

        started = time.monotonic()
        hang = asyncio.create_task(hung())
        await asyncio.sleep(0.2)
        # The other upstream answers while `a` is hung.
        assert (await client.call_tool("b__echo", {"text": "alive"})).content[0].text == "alive"  # type: ignore[union-attr]
        assert not hang.done()
        error = await hang
        assert time.monotonic() - started < 25  # the tool's own 30 s were cut short
        assert "timed out after 5 s" in error.error.message and "a__slow" in error.error.message

        process_b.kill()
        await asyncio.sleep(0.5)

        async def crashed() -> MCPError:
            with pytest.raises(MCPError) as caught:
                await client.call_tool("b__echo", {"text": "x"})
            return caught.value

        started = time.monotonic()
        crash = asyncio.create_task(crashed())
        assert (await client.call_tool("a__echo", {"text": "still"})).content[0].text == "still"  # type: ignore[union-attr]
        error = await crash
        assert time.monotonic() - started < 15  # b's 2 s, not the tenant's 20 s
        assert "source 'b'" in error.error.message, error.error.message
        assert "Traceback" not in error.error.message

    metrics = httpx.get(f"{gateway.base}/metrics", headers=ADMIN_HEADERS).text
    assert 'outcome="timeout",profile="two",tenant="acme",tool="a__slow"' in metrics
    assert 'mcp_gateway_errors_total{kind="upstream_timeout",profile="two",tenant="acme"} 1.0' in metrics
    assert 'mcp_gateway_errors_total{kind="upstream_error",profile="two",tenant="acme"}' in metrics
    assert process_a.alive()
