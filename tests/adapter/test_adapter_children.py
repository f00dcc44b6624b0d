"""Stdio children that misbehave, per-caller pools, and a third-party server from npm, behind the adapter."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.adapter.support import PYTHON, ROOT, connect, start_adapter
from tests.servers.launch import everything_command

RAW_SERVER = str(ROOT / "tests" / "adapter" / "servers" / "raw_server.py")
PROBE_SERVER = str(ROOT / "tests" / "adapter" / "servers" / "probe_server.py")


def raw(mode: str, **extra: Any) -> dict[str, Any]:
    return {"name": mode, "type": "stdio", "command": PYTHON, "args": [RAW_SERVER, mode], **extra}


def _gone(pid: int) -> bool:
    """True when `pid` no longer runs (exited, or a zombie waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


async def test_child_ignoring_sigterm_is_killed_after_the_grace_period(spawn: Any, tmp_path: Path) -> None:
    adapter = start_adapter(spawn, tmp_path, [raw("stubborn", stopGraceSeconds=1, protocol="legacy")])
    async with connect(adapter.mcp_url, "legacy") as client:
        child = int((await client.call_tool("call", {})).content[0].text)  # type: ignore[union-attr]
    assert not _gone(child)
    adapter.process.stop(grace=20)  # SIGTERM to the adapter: it stops its children, then exits
    for _ in range(50):  # bounded: SIGKILL follows one second after SIGTERM
        if _gone(child):
            break
        await anyio.sleep(0.1)
    log = adapter.process.log_path.read_text(errors="replace")
    assert _gone(child), log[-2000:]
    assert "raw: ignoring SIGTERM" in log  # the child did get (and ignore) SIGTERM first
    assert "did not exit 1.0s after SIGTERM; killing it" in log
    assert "Application shutdown complete" in log  # the adapter itself shut down cleanly, not killed


async def test_server_that_never_answers_times_out_with_a_clear_error(spawn: Any, tmp_path: Path) -> None:
    adapter = start_adapter(spawn, tmp_path, [raw("mute", timeoutSeconds=1.5, protocol="legacy")])
    async with connect(adapter.mcp_url, "legacy") as client:
        with anyio.fail_after(20), pytest.raises(Exception, match=r"did not answer tools/call 'call' within 1.5s"):
            await client.call_tool("call", {})
        with anyio.fail_after(20), pytest.raises(Exception, match="timeoutSeconds"):
            await client.call_tool("call", {})  # the session survives; the next call is bounded the same way


async def test_garbage_on_stdout_is_reported_and_survived(spawn: Any, tmp_path: Path) -> None:
    adapter = start_adapter(spawn, tmp_path, [raw("garbage", protocol="legacy")])
    async with connect(adapter.mcp_url, "legacy") as client:
        first = await client.call_tool("call", {})
        second = await client.call_tool("call", {})
    assert first.content[0].text == "garbage answered"  # type: ignore[union-attr]
    assert second.content[0].text == "garbage answered"  # type: ignore[union-attr]
    log = adapter.process.log_text()
    assert "that are not JSON-RPC and were dropped" in log
    assert '"garbage_lines": 1000' in log  # reported as it grows, not once per line
    assert log.count("not JSON-RPC and were dropped") < 20
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{adapter.url}/readyz")).json()["ready"] is True


async def _pid(url: str, caller: str) -> str:
    async with connect(url, "legacy", caller=caller) as client:
        return str((await client.call_tool("pid", {})).content[0].text)  # type: ignore[union-attr]


async def _callers(url: str) -> int:
    async with httpx.AsyncClient() as http:
        return int((await http.get(f"{url}/map")).json()["sources"]["probe"]["callers"])


async def test_per_caller_pool_evicts_idle_callers(spawn: Any, tmp_path: Path) -> None:
    probe = {
        "name": "probe",
        "type": "stdio",
        "command": PYTHON,
        "args": [PROBE_SERVER],
        "scope": "per-caller",
        "protocol": "legacy",
        "pool": {"idleSeconds": 1},
    }
    adapter = start_adapter(spawn, tmp_path, [probe], server={"trustCallerHeader": True})
    first = await _pid(adapter.mcp_url, "alice")
    assert await _callers(adapter.url) == 1
    for _ in range(60):  # bounded: eviction runs every half idle period
        if await _callers(adapter.url) == 0:
            break
        await anyio.sleep(0.1)
    assert await _callers(adapter.url) == 0
    assert _gone(int(first))  # the idle caller's child process was stopped
    assert await _pid(adapter.mcp_url, "alice") != first  # a fresh child on return


async def test_a_caller_waiting_for_a_slow_child_is_not_evicted_as_idle(spawn: Any, tmp_path: Path) -> None:
    # The child takes 2 s to start, twice the idle period: the call waiting for it keeps its
    # session busy, so the pool's eviction (every half second) does not close it under the call.
    probe = {
        "name": "probe",
        "type": "stdio",
        "command": PYTHON,
        "args": [PROBE_SERVER],
        "env": {"PROBE_START_DELAY": "2"},
        "scope": "per-caller",
        "protocol": "legacy",
        "pool": {"idleSeconds": 1},
    }
    adapter = start_adapter(spawn, tmp_path, [probe], server={"trustCallerHeader": True})
    assert int(await _pid(adapter.mcp_url, "alice")) > 0


async def test_per_caller_pool_respects_max_callers(spawn: Any, tmp_path: Path) -> None:
    probe = {
        "name": "probe",
        "type": "stdio",
        "command": PYTHON,
        "args": [PROBE_SERVER],
        "scope": "per-caller",
        "protocol": "legacy",
        "pool": {"maxCallers": 1},
    }
    adapter = start_adapter(spawn, tmp_path, [probe], server={"trustCallerHeader": True})
    alice = await _pid(adapter.mcp_url, "alice")
    bob = await _pid(adapter.mcp_url, "bob")  # evicts idle alice: at most one caller
    assert bob != alice and _gone(int(alice))
    assert await _callers(adapter.url) == 1

    async with connect(adapter.mcp_url, "legacy", caller="bob") as busy, anyio.create_task_group() as tg:
        tg.start_soon(busy.call_tool, "slow", {"seconds": 3})
        await anyio.sleep(0.5)
        result = await _call_as(adapter.mcp_url, "carol")
        tg.cancel_scope.cancel()
    assert "maximum of 1 callers (pool.maxCallers) and all are busy" in result
    assert await _callers(adapter.url) == 1


async def _call_as(url: str, caller: str) -> str:
    try:
        await _pid(url, caller)
    except Exception as exc:
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]  # type: ignore[assignment]
        return str(exc)
    return "no error"


async def test_everything_server_from_npm_behind_the_adapter(spawn: Any, tmp_path: Path) -> None:
    command, *args = everything_command("stdio")
    source = {"name": "everything", "type": "stdio", "command": command, "args": args, "prefixPolicy": "always"}
    adapter = start_adapter(spawn, tmp_path, [source], env={"PATH": f"{Path(command).parent}:{os.environ['PATH']}"})
    for mode in ("legacy", "2026-07-28"):
        async with connect(adapter.mcp_url, mode) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert {"everything__echo", "everything__get-sum"} <= names, names
            echoed = await client.call_tool("everything__echo", {"message": f"hello {mode}"})
            assert echoed.content[0].text == f"Echo: hello {mode}"  # type: ignore[union-attr]
            summed = await client.call_tool("everything__get-sum", {"a": 2, "b": 40})
            assert "42" in summed.content[0].text  # type: ignore[union-attr]


async def _pid_in(url: str, mode: str, caller: str | None = None, tool: str = "pid") -> str:
    async with connect(url, mode, caller=caller) as client:
        return str((await client.call_tool(tool, {})).content[0].text)  # type: ignore[union-attr]


def _children_started(adapter: Any) -> int:
    return sum('"msg": "child started"' in line for line in adapter.process.log_text().splitlines())


@pytest.mark.parametrize("scope", ["shared", "per-caller"])
async def test_one_child_serves_both_eras_of_a_handshake_only_server(spawn: Any, tmp_path: Path, scope: str) -> None:
    # `protocol: auto` (the default) on a server that speaks only the handshake era (most stdio servers):
    # clients of either era reach the same child (one per caller scope), never a second one.
    adapter = start_adapter(spawn, tmp_path, [raw("pid", scope=scope)], server={"trustCallerHeader": True})
    url = adapter.mcp_url
    modern = await _pid_in(url, "2026-07-28", caller="alice", tool="call")  # first: before any handshake client
    assert await _pid_in(url, "legacy", caller="alice", tool="call") == modern
    if scope == "per-caller":
        bob = await _pid_in(url, "legacy", caller="bob", tool="call")
        assert bob != modern  # callers stay isolated from each other
        assert await _pid_in(url, "2026-07-28", caller="bob", tool="call") == bob
    assert _children_started(adapter) == (3 if scope == "per-caller" else 1)  # per-caller: + the catalog's


async def test_a_dual_era_server_gets_a_child_per_era_in_use(spawn: Any, tmp_path: Path) -> None:
    # A server speaking both eras may implement an interaction in one era's terms only, so each era's
    # clients reach a child negotiated in their era (see the config docs): two children, each stable.
    probe = {"name": "probe", "type": "stdio", "command": PYTHON, "args": [PROBE_SERVER]}
    adapter = start_adapter(spawn, tmp_path, [probe])
    modern = await _pid_in(adapter.mcp_url, "2026-07-28")
    legacy = await _pid_in(adapter.mcp_url, "legacy")
    assert legacy != modern
    assert await _pid_in(adapter.mcp_url, "2026-07-28") == modern
    assert await _pid_in(adapter.mcp_url, "legacy") == legacy
    assert _children_started(adapter) == 2
