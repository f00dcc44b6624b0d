"""Log defaults: no line per successful request unless asked for; refusals are always logged."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import yaml

from tests.gateway.support import Spawn, modern_call, modern_headers, profile, start_gateway
from tests.support.processes import free_port

_NO_ECHO = {"tools": {"deny": ["echo"]}}


def _records(text: str) -> list[dict[str, Any]]:
    records = []
    for line in text.splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            records.append(parsed)
    return records


def _calls(url: str, count: int) -> list[int]:
    with httpx.Client(timeout=30) as http:
        return [
            http.post(
                url, json=modern_call("echo", {"text": str(i)}, i), headers=modern_headers("tools/call", "echo")
            ).status_code
            for i in range(count)
        ]


def _config(routing: Callable[[dict[str, Any]], Path], feature: str) -> Path:
    return routing(
        {
            "tenants": [{"id": "acme"}],
            "profiles": [
                profile("open", "acme", [("feat", feature)], auth={"mode": "none"}),
                profile("locked", "acme", [("feat", feature)]),
                profile("narrow", "acme", [("feat", feature)], auth={"mode": "none"}, policy=_NO_ECHO),
            ],
        }
    )


async def test_default_logs_refusals_but_not_successes(
    spawn: Spawn, feature: str, routing: Callable[[dict[str, Any]], Path]
) -> None:
    gw = start_gateway(spawn, _config(routing, feature))
    assert _calls(gw.url("open"), 20) == [200] * 20
    assert _calls(gw.url("locked"), 1) == [401]
    assert _calls(gw.url("narrow"), 1) == [200]  # a JSON-RPC error: the policy hides the tool

    records = _records(gw.process.log_text())
    lines = [r for r in records if r.get("logger") == "mcp_gateway.front"]
    assert not [r for r in lines if r["msg"] == "request"], lines
    refused = [r for r in lines if r["msg"] == "request refused"]
    assert [(r["profile"], r["status"]) for r in refused] == [("locked", 401)]
    assert [r["tool"] for r in lines if r["msg"] == "tool call refused by policy"] == ["echo"]
    # Neither uvicorn's access log nor the upstream HTTP clients write a line per call.
    assert not [r for r in records if r.get("logger") in ("uvicorn.access", "httpx", "httpx2")]


async def test_access_log_flag_and_env_turn_on_one_line_per_request(
    spawn: Spawn, feature: str, routing: Callable[[dict[str, Any]], Path]
) -> None:
    config = _config(routing, feature)
    flagged = start_gateway(spawn, config, name="gw-flag", args=["--access-log"])
    from_env = start_gateway(spawn, config, name="gw-env", env={"MCP_GATEWAY_ACCESS_LOG": "true"})
    for gw in (flagged, from_env):
        assert _calls(gw.url("open"), 5) == [200] * 5
        lines = await _request_lines(gw.process.log_text, 5)
        assert [(r["profile"], r["method"], r["status"]) for r in lines] == [("open", "tools/call", 200)] * 5


async def _request_lines(log_text: Callable[[], str], expected: int) -> list[dict[str, Any]]:
    """The access log's lines once `expected` are written: the line follows the response, so on
    a loaded machine the last one can reach the log file a moment after the client has its answer."""
    lines: list[dict[str, Any]] = []
    for _ in range(50):  # bounded: 5 s
        lines = [r for r in _records(log_text()) if r.get("msg") == "request"]
        if len(lines) >= expected:
            break
        await anyio.sleep(0.1)
    return lines


async def test_adapter_writes_no_access_log_by_default(spawn: Spawn, feature: str, tmp_path: Path) -> None:
    logs: dict[bool, str] = {}
    for enabled in (False, True):
        port = free_port()
        config = tmp_path / f"adapter-{enabled}.yaml"
        data: dict[str, Any] = {"sources": [{"name": "feat", "type": "mcp", "url": feature}]}
        if enabled:
            data["accessLog"] = True
        config.write_text(yaml.safe_dump(data))
        cmd = [sys.executable, "-m", "mcp_adapter.cli", "--config", str(config), "--port", str(port)]
        process = spawn(cmd, name=f"adapter-{enabled}", ready_url=f"http://127.0.0.1:{port}/readyz", timeout=60)
        assert _calls(f"http://127.0.0.1:{port}/mcp", 5) == [200] * 5
        logs[enabled] = process.log_text()
    assert not [r for r in _records(logs[False]) if r.get("logger") == "uvicorn.access"]
    assert len([r for r in _records(logs[True]) if r.get("logger") == "uvicorn.access"]) >= 5
