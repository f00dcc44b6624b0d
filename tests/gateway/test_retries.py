"""Retries of tool calls through a real gateway and a real flaky upstream (servers/flaky_server.py).

A retry happens for idempotent tools (read-only or idempotent hints, or `policy.idempotentTools`);
a call of any other tool that reached the upstream is never sent twice; no retry outlives the
call's deadline; settings come from the profile and, per upstream, override it."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError
from mcp_gateway import errors

from tests.gateway.support import ADMIN_HEADERS, GatewayProc, Spawn, mcp_client, start_gateway, write_config
from tests.support.processes import free_port

FLAKY = Path(__file__).resolve().parent / "servers" / "flaky_server.py"
FAST = {"attempts": 3, "backoffBaseSeconds": 0.01, "backoffMaxSeconds": 0.05}


class Flaky:
    def __init__(self, spawn: Spawn, tmp_path: Path, name: str) -> None:
        self.control = tmp_path / f"{name}.json"
        self.control.write_text("{}")
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/mcp"
        cmd = [sys.executable, str(FLAKY), "--port", str(port), "--control", str(self.control)]
        self.process = spawn(cmd, name=name, ready_url=self.url)

    def set(self, **state: float) -> None:
        self.control.write_text(json.dumps(state))

    def calls(self, tool: str) -> int:
        path = self.control.with_name(self.control.name + ".calls")
        return path.read_text().splitlines().count(tool) if path.exists() else 0


def _gateway(spawn: Spawn, tmp_path: Path, upstreams: list[dict[str, Any]], **profile: Any) -> GatewayProc:
    routing = {
        "tenants": [{"id": "acme"}],
        "profiles": [{"id": "p", "tenant": "acme", "auth": {"mode": "none"}, "upstreams": upstreams, **profile}],
    }
    return start_gateway(spawn, write_config(tmp_path / "routing.yaml", routing))


def _retries(gateway: GatewayProc, upstream: str, reason: str) -> float:
    """mcp_gateway_tool_call_retries_total for this upstream and reason, from /metrics."""
    wanted = {"tenant": "acme", "profile": "p", "upstream": upstream, "reason": reason}
    for line in httpx.get(f"{gateway.base}/metrics", headers=ADMIN_HEADERS).text.splitlines():
        series = re.match(r"^mcp_gateway_tool_call_retries_total\{(.*)\} (\S+)$", line)
        if series and dict(re.findall(r'(\w+)="([^"]*)"', series.group(1))) == wanted:
            return float(series.group(2))
    return 0.0


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_idempotent_tools_are_retried_until_they_succeed(spawn: Spawn, tmp_path: Path, mode: str) -> None:
    flaky = Flaky(spawn, tmp_path, "flaky")
    gateway = _gateway(spawn, tmp_path, [{"name": "flaky", "url": flaky.url}], retries=FAST)
    async with mcp_client(gateway.url("p"), mode=mode) as client:
        flaky.set(fail=2)  # two failures, then an answer: within three attempts
        result = await client.call_tool("read_value", {"value": "x"})
        assert result.content[0].text == "read_value ok x"  # type: ignore[union-attr]
        assert flaky.calls("read_value") == 3
        flaky.set(fail=1)
        result = await client.call_tool("set_value", {"value": "y"})  # idempotentHint
        assert result.content[0].text == "set_value ok y"  # type: ignore[union-attr]
        assert flaky.calls("set_value") == 2
        flaky.set(fail=3)  # more failures than attempts: the last error reaches the client
        with pytest.raises(MCPError) as failed:
            await client.call_tool("read_value", {})
        assert "failing on purpose" in failed.value.error.message
        assert flaky.calls("read_value") == 6
    assert _retries(gateway, "flaky", "error") == 2 + 1 + 2


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_sent_call_of_a_non_idempotent_tool_is_never_retried(spawn: Spawn, tmp_path: Path, mode: str) -> None:
    flaky = Flaky(spawn, tmp_path, "flaky")
    gateway = _gateway(spawn, tmp_path, [{"name": "flaky", "url": flaky.url}], retries={**FAST, "attempts": 10})
    async with mcp_client(gateway.url("p"), mode=mode) as client:
        flaky.set(fail=1)
        with pytest.raises(MCPError) as failed:
            await client.call_tool("charge_card", {"value": "42"})
        assert "failing on purpose" in failed.value.error.message
        assert flaky.calls("charge_card") == 1
    assert _retries(gateway, "flaky", "error") == 0


async def test_profile_idempotent_tools_make_a_tool_retryable(spawn: Spawn, tmp_path: Path) -> None:
    flaky = Flaky(spawn, tmp_path, "flaky")
    gateway = _gateway(
        spawn, tmp_path, [{"name": "flaky", "url": flaky.url}], retries=FAST,
        policy={"idempotentTools": ["charge_*"]},
    )  # fmt: skip
    async with mcp_client(gateway.url("p")) as client:
        flaky.set(fail=1)
        result = await client.call_tool("charge_card", {})
        assert not result.is_error and flaky.calls("charge_card") == 2


async def test_upstream_settings_override_the_profile(spawn: Spawn, tmp_path: Path) -> None:
    retried, plain, errors_only = (Flaky(spawn, tmp_path, n) for n in ("retried", "plain", "timeouts"))
    upstreams = [
        {"name": "retried", "url": retried.url, "prefix": "always"},
        {"name": "plain", "url": plain.url, "prefix": "always", "retries": {"attempts": 1}},
        {"name": "timeouts", "url": errors_only.url, "prefix": "always", "retries": {"retryOn": ["timeout"]}},
    ]
    gateway = _gateway(spawn, tmp_path, upstreams, retries=FAST)
    async with mcp_client(gateway.url("p")) as client:
        for flaky in (retried, plain, errors_only):
            flaky.set(fail=1)
        assert not (await client.call_tool("retried__read_value", {})).is_error
        assert retried.calls("read_value") == 2
        for name in ("plain__read_value", "timeouts__read_value"):
            with pytest.raises(MCPError):
                await client.call_tool(name, {})
        assert plain.calls("read_value") == 1 and errors_only.calls("read_value") == 1
    assert _retries(gateway, "retried", "error") == 1
    assert _retries(gateway, "plain", "error") == _retries(gateway, "timeouts", "error") == 0


async def test_no_wait_is_started_that_would_outlast_the_deadline(spawn: Spawn, tmp_path: Path) -> None:
    flaky = Flaky(spawn, tmp_path, "flaky")
    slow_backoff = {"attempts": 5, "backoffBaseSeconds": 30, "backoffMaxSeconds": 30, "jitter": 0}
    gateway = _gateway(
        spawn, tmp_path, [{"name": "flaky", "url": flaky.url}], retries=slow_backoff, limits={"timeoutSeconds": 5}
    )
    async with mcp_client(gateway.url("p")) as client:
        flaky.set(fail=1)
        with pytest.raises(MCPError) as failed:
            await client.call_tool("read_value", {})
        # The upstream's own error, at once: a 30 s wait would end past the 5 s deadline.
        assert "failing on purpose" in failed.value.error.message
        assert flaky.calls("read_value") == 1
    assert _retries(gateway, "flaky", "error") == 0


async def test_retries_of_a_hanging_upstream_end_at_the_call_deadline(spawn: Spawn, tmp_path: Path) -> None:
    flaky = Flaky(spawn, tmp_path, "flaky")
    upstream = {"name": "flaky", "url": flaky.url, "timeoutSeconds": 0.5}  # each attempt gives up after 0.5 s
    gateway = _gateway(
        spawn, tmp_path, [upstream], retries={**FAST, "attempts": 10}, limits={"timeoutSeconds": 2}
    )  # fmt: skip
    async with mcp_client(gateway.url("p")) as client:
        flaky.set(slow=0.2)  # slow but within the upstream's 0.5 s: an answer, not a failure
        assert (await client.call_tool("read_value", {})).content[0].text == "read_value ok"  # type: ignore[union-attr]
        assert flaky.calls("read_value") == 1
        flaky.set(hang=30)
        with pytest.raises(MCPError) as failed:
            await client.call_tool("read_value", {})
        # The call's deadline ended it (the gateway's timeout error), not the attempts running out.
        assert failed.value.error.code == errors.UPSTREAM_TIMEOUT
        assert "timed out after 2 s" in failed.value.error.message
    attempts = flaky.calls("read_value") - 1
    assert 2 <= attempts <= 4, attempts  # 0.5 s each within 2 s, never all ten
    assert _retries(gateway, "flaky", "timeout") == attempts - 1


async def test_an_unsent_call_is_retried_for_any_tool(spawn: Spawn, tmp_path: Path) -> None:
    flaky = Flaky(spawn, tmp_path, "flaky")
    # 0.5 s to reconnect: a call while the upstream is down fails fast with "not connected".
    upstream = {"name": "flaky", "url": flaky.url, "timeoutSeconds": 0.5}
    gateway = _gateway(spawn, tmp_path, [upstream], retries=FAST)
    async with mcp_client(gateway.url("p")) as client:
        assert not (await client.call_tool("charge_card", {})).is_error
        flaky.process.kill()
        with pytest.raises(MCPError) as failed:
            await client.call_tool("charge_card", {})
        # -32002: the upstream is unavailable (not connected, or could not be reached at all).
        assert failed.value.error.code == -32002 and "source 'flaky'" in failed.value.error.message
    # Never sent, so safe to send again although charge_card is not idempotent: all three attempts ran.
    assert flaky.calls("charge_card") == 1
    assert _retries(gateway, "flaky", "unavailable") == 2
