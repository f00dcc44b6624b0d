"""Upstream faults seen by the adapter: a stdio server that never answers, one that writes
garbage or floods its stdout, and a remote MCP server that dies in the middle of a call."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.adapter.support import PYTHON, ROOT, connect, start_adapter
from tests.gateway.support import mcp_client, start_gateway, write_config
from tests.hardening.support import rss_kib
from tests.servers.launch import http_command, http_url
from tests.support.processes import free_port

MISBEHAVING = str(ROOT / "tests" / "hardening" / "servers" / "misbehaving_server.py")


def misbehaving(timeout: float = 30.0) -> dict[str, Any]:
    return {
        "name": "bad",
        "type": "stdio",
        "command": PYTHON,
        "args": [MISBEHAVING],
        "timeoutSeconds": timeout,
        "restart": {"initialBackoff": 0.2, "maxBackoff": 1},
    }


async def test_server_that_never_answers_times_out_at_the_bound(spawn: Any, tmp_path: Path) -> None:
    adapter = start_adapter(spawn, tmp_path, [misbehaving(timeout=1.5)])
    async with connect(adapter.mcp_url, "legacy") as client:
        started = time.monotonic()
        with pytest.raises(MCPError) as caught:
            await client.call_tool("hang", {})
        elapsed = time.monotonic() - started
        assert 1.4 <= elapsed < 10, elapsed
        assert "did not answer" in caught.value.error.message and "timeoutSeconds" in caught.value.error.message
        # The hung call does not poison the session: the next one answers.
        assert (await client.call_tool("quick", {})).content[0].text == "quick"  # type: ignore[union-attr]


async def test_garbage_on_stdout_is_reported_and_survived(spawn: Any, tmp_path: Path) -> None:
    adapter = start_adapter(spawn, tmp_path, [misbehaving()])
    for mode in ("legacy", "2026-07-28"):
        async with connect(adapter.mcp_url, mode) as client:
            result = await client.call_tool("garbage", {"lines": 20})
            assert result.content[0].text == "after garbage"  # type: ignore[union-attr]
            assert (await client.call_tool("quick", {})).content[0].text == "quick"  # type: ignore[union-attr]
    log = adapter.process.log_text()
    assert "not JSON-RPC and were dropped" in log and '"source": "bad"' in log
    assert "Traceback" not in log


async def test_stdout_flood_is_bounded_and_reported(spawn: Any, tmp_path: Path) -> None:
    adapter = start_adapter(spawn, tmp_path, [misbehaving(timeout=4)])
    async with connect(adapter.mcp_url, "legacy") as client:
        assert (await client.call_tool("quick", {})).content[0].text == "quick"  # type: ignore[union-attr]
        baseline = rss_kib(adapter.process.pid)
        # 64 MiB on one line, then an answer: the line is dropped, the answer arrives.
        flooded = await client.call_tool("flood", {"megabytes": 64})
        assert flooded.content[0].text == "after flood"  # type: ignore[union-attr]
        # A runaway writer that never ends its line: the call times out, memory stays bounded.
        with pytest.raises(MCPError, match="timeoutSeconds"):
            await client.call_tool("flood_forever", {"seconds": 6})
        grown_mib = (rss_kib(adapter.process.pid) - baseline) / 1024
        assert grown_mib < 100, f"adapter grew by {grown_mib:.0f} MiB while a child flooded stdout"
        await anyio.sleep(3)  # the runaway writer finishes; its answer, glued to the line, is recovered and ignored
        # The runaway line never ended, yet the next message is not lost with it: the next call answers.
        assert (await client.call_tool("quick", {})).content[0].text == "quick"  # type: ignore[union-attr]
    log = adapter.process.log_text()
    assert "longer than" in log and '"source": "bad"' in log


async def test_message_after_a_never_ended_huge_line_is_delivered(spawn: Any, tmp_path: Path) -> None:
    adapter = start_adapter(spawn, tmp_path, [misbehaving(timeout=20)])
    for mode in ("legacy", "2026-07-28"):
        async with connect(adapter.mcp_url, mode) as client:
            # 40 MiB of JSON-looking bytes, no newline, then the answer on the same "line": the
            # adapter drops the runaway bytes and delivers the answer, the call does not time out.
            result = await client.call_tool("runaway", {"megabytes": 40})
            assert result.content[0].text == "after runaway"  # type: ignore[union-attr]
            assert (await client.call_tool("quick", {})).content[0].text == "quick"  # type: ignore[union-attr]
    log = adapter.process.log_text()
    assert "kept the JSON-RPC message that followed" in log and '"source": "bad"' in log
    assert "Traceback" not in log


async def test_remote_upstream_dying_mid_call_fails_at_once(spawn: Any, tmp_path: Path) -> None:
    port = free_port()
    upstream = spawn(http_command(port), name="feature-remote", ready_url=http_url(port))
    source = {"name": "remote", "type": "mcp", "url": http_url(port), "timeoutSeconds": 60}
    adapter = start_adapter(spawn, tmp_path, [source])
    async with connect(adapter.mcp_url, "legacy") as client:
        assert (await client.call_tool("echo", {"text": "up"})).content[0].text == "up"  # type: ignore[union-attr]

        async def killer() -> None:
            await anyio.sleep(1.0)
            upstream.kill()

        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            tg.start_soon(killer)
            with pytest.raises(MCPError) as caught:
                await client.call_tool("slow", {"seconds": 50})
        elapsed = time.monotonic() - started
        # Fails when the upstream goes away, not when timeoutSeconds (60 s) runs out.
        print(f"\nremote upstream killed mid-call: the call failed after {elapsed:.1f}s: {caught.value.error.message}")
        assert elapsed < 15, elapsed
        assert "remote" in caught.value.error.message
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{adapter.url}/healthz")).status_code == 200


async def test_upstream_dying_mid_call_through_the_gateway(spawn: Any, tmp_path: Path) -> None:
    port = free_port()
    upstream = spawn(http_command(port), name="feature-remote", ready_url=http_url(port))
    config = write_config(
        tmp_path / "routing.yaml",
        {
            "tenants": [{"id": "acme"}],
            "profiles": [
                {
                    "id": "open",
                    "tenant": "acme",
                    "upstreams": [{"name": "feat", "url": http_url(port), "timeoutSeconds": 60}],
                    "auth": {"mode": "none"},
                }
            ],
        },
    )
    gateway = start_gateway(spawn, config)
    for mode in ("legacy", "2026-07-28"):
        if not upstream.alive():
            upstream = spawn(http_command(port), name="feature-remote", ready_url=http_url(port))
        async with mcp_client(gateway.url("open"), mode=mode) as client:
            assert (await client.call_tool("echo", {"text": "up"})).content[0].text == "up"  # type: ignore[union-attr]

            async def killer(target: Any = upstream) -> None:
                await anyio.sleep(1.0)
                target.kill()

            started = time.monotonic()
            async with anyio.create_task_group() as tg:
                tg.start_soon(killer)
                with pytest.raises(MCPError) as caught:
                    await client.call_tool("slow", {"seconds": 50})
            elapsed = time.monotonic() - started
            print(f"\n{mode}: upstream killed mid-call through the gateway: failed after {elapsed:.1f}s")
            assert elapsed < 15, elapsed
            assert "Traceback" not in caught.value.error.message
