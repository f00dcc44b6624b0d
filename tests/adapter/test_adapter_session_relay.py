"""2026-07-28 `tools/call` of sources that relay no bytes (stdio children, handshake-only remote
servers) served on the live upstream session without the SDK server path (`session_relay.py`):
same results, errors, progress, refusals, timeouts, crash handling and cancellation as the SDK path.

Real processes throughout: the adapter, its stdio children and the feature server over HTTP.
`mcp_adapter_passthrough_total` tells which calls took the fast path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from tests.adapter.support import CRASHY_SERVER, FEATURE_SERVER, PYTHON, Adapter, connect, feature_stdio, start_adapter
from tests.support.processes import free_port

MODERN = "2026-07-28"


def _text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


async def _relayed(adapter: Adapter, source: str) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{adapter.url}/metrics")).text
    for line in text.splitlines():
        if line.startswith(f'mcp_adapter_passthrough_total{{source="{source}"}} '):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize("protocol", ["auto", "legacy"])
async def test_stdio_calls_take_the_session_relay_and_answer_as_the_sdk_path(
    spawn: Any, tmp_path: Path, protocol: str
) -> None:
    adapter = start_adapter(spawn, tmp_path, [feature_stdio(protocol=protocol, prefixPolicy="always")])
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with connect(adapter.mcp_url, MODERN) as c:
        echoed = await c.call_tool("feat__echo", {"text": "hello"})
        assert _text(echoed) == "hello" and not echoed.is_error
        assert ((echoed.meta or {}).get("io.modelcontextprotocol/serverInfo") or {}).get("name") != "feature"
        added = await c.call_tool("feat__add", {"a": 2, "b": 40})
        assert added.structured_content == {"a": 2, "b": 40, "sum": 42}
        done = await c.call_tool("feat__progress_steps", {"steps": 3}, progress_callback=on_progress)  # type: ignore[arg-type]
        assert _text(done) == "done 3 steps" and progress == [1.0, 2.0, 3.0]  # streamed as they came
        failed = await c.call_tool("feat__fail", {"message": "nope"})
        assert failed.is_error and _text(failed) == "nope"
        with pytest.raises(MCPError, match="requested protocol error"):
            await c.call_tool("feat__protocol_error", {})
        # The client declared no sampling: refused with -32021, whichever era the child speaks.
        with pytest.raises(MCPError) as refused:
            await c.call_tool("feat__sample_llm", {"prompt": "hi"})
        assert refused.value.error.code == types.MISSING_REQUIRED_CLIENT_CAPABILITY
        assert _text(await c.call_tool("feat__echo", {"text": "after"})) == "after"  # the session is fine
    assert await _relayed(adapter, "feat") == 7


async def test_a_client_that_can_answer_server_requests_keeps_the_sdk_path(spawn: Any, tmp_path: Path) -> None:
    adapter = start_adapter(spawn, tmp_path, [feature_stdio(prefixPolicy="always")])

    async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="sampled"), model="test"
        )

    async with connect(adapter.mcp_url, MODERN, sampling_callback=sampling) as c:
        answer = await c.call_tool("feat__sample_llm", {"prompt": "hi"})
        assert "sampled" in _text(answer)
    assert await _relayed(adapter, "feat") == 0


async def test_handshake_only_remote_source_is_served_on_its_session(spawn: Any, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    spawn([PYTHON, FEATURE_SERVER, "--transport", "http", "--port", str(port)], name="feature-http", ready_url=url)
    source = {"name": "old", "type": "mcp", "url": url, "protocol": "legacy", "prefixPolicy": "always"}
    adapter = start_adapter(spawn, tmp_path, [source])
    async with connect(adapter.mcp_url, MODERN) as c:
        assert _text(await c.call_tool("old__echo", {"text": "hi"})) == "hi"
    async with connect(adapter.mcp_url, "legacy") as legacy:  # a handshake client: the SDK path, same answer
        assert _text(await legacy.call_tool("old__echo", {"text": "hi"})) == "hi"
    assert await _relayed(adapter, "old") == 1


async def test_session_relay_keeps_the_source_timeout(spawn: Any, tmp_path: Path) -> None:
    adapter = start_adapter(spawn, tmp_path, [feature_stdio(timeoutSeconds=1, prefixPolicy="always")])
    async with connect(adapter.mcp_url, MODERN) as c:
        with anyio.fail_after(10), pytest.raises(MCPError) as caught:
            await c.call_tool("feat__slow", {"seconds": 5})
        assert "did not answer tools/call 'slow' within 1s (timeoutSeconds)" in caught.value.error.message
        assert _text(await c.call_tool("feat__echo", {"text": "still fine"})) == "still fine"
    assert await _relayed(adapter, "feat") == 2


async def test_a_child_that_dies_mid_call_fails_the_call_then_restarts(spawn: Any, tmp_path: Path) -> None:
    crashy = {
        "name": "crashy",
        "type": "stdio",
        "command": PYTHON,
        "args": [CRASHY_SERVER],
        "restart": {"initialBackoff": 0.2, "maxBackoff": 1},
    }
    adapter = start_adapter(spawn, tmp_path, [crashy])
    async with connect(adapter.mcp_url, MODERN) as c:
        first_pid = _text(await c.call_tool("pid", {}))
        with pytest.raises(MCPError, match=r"closed the connection|not connected") as crashed:
            await c.call_tool("crash", {})
        assert crashed.value.error.code == -32002  # unavailable: retry shortly
        second_pid = None
        for _ in range(50):  # bounded: the child restarts after ~0.2 s
            try:
                second_pid = _text(await c.call_tool("pid", {}))
                break
            except MCPError:
                await anyio.sleep(0.2)
    assert second_pid is not None and second_pid != first_pid
    assert await _relayed(adapter, "crashy") >= 2  # pid and crash (while it restarts, the SDK path waits)


async def test_a_client_that_leaves_cancels_the_upstream_call(spawn: Any, tmp_path: Path) -> None:
    adapter = start_adapter(spawn, tmp_path, [feature_stdio(prefixPolicy="always")])
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": "feat__slow",
            "arguments": {"seconds": 60},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    }
    headers = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/call",
        "Mcp-Name": "feat__slow",
    }

    async def inflight(http: httpx.AsyncClient) -> int:
        return int((await http.get(f"{adapter.url}/map")).json()["sources"]["feat"]["inflight"])

    async with httpx.AsyncClient(timeout=30) as http:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: http.post(adapter.mcp_url, content=json.dumps(body), headers=headers))
            with anyio.fail_after(15):
                while await inflight(http) == 0:
                    await anyio.sleep(0.05)
            tg.cancel_scope.cancel()  # the client drops its POST
        with anyio.fail_after(15):  # bounded: the upstream request ends when the client leaves
            while await inflight(http) != 0:
                await anyio.sleep(0.05)
    assert await _relayed(adapter, "feat") == 1
