"""Per-caller and per-connection state of the adapter's MCP endpoint: who the caller is, and that
nothing kept for a caller or a connection outlives it.

The endpoint (`build_mcp_server` + `build_app`) is served by a real uvicorn on loopback inside
the test process, so the test can look at the `Runtime` it serves from; clients are real
`mcp.Client`s over HTTP. The one source is a small `Source` written for the test that reports
the caller identity the adapter resolved and counts upstream subscriptions.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp_adapter import metrics
from mcp_adapter.aggregate import Aggregator
from mcp_adapter.downstream import Downstream
from mcp_adapter.server import Runtime, build_app, build_mcp_server
from mcp_adapter.sources.base import Source

from tests.adapter.support import connect
from tests.support.asgi_server import uvicorn_serving

WATCHED = "test://watched"


@dataclass(frozen=True)
class _Naming:
    effective_prefix: str = "who"
    prefix_policy: str = "never"
    required: bool = True


class WhoAmI(Source):
    """Tool `whoami` answers the caller identity the adapter resolved; one subscribable resource."""

    kind = "test"

    def __init__(self) -> None:
        super().__init__("who", _Naming())
        self.subscriptions: Counter[str] = Counter()

    def capabilities(self) -> types.ServerCapabilities:
        return types.ServerCapabilities(
            tools=types.ToolsCapability(), resources=types.ResourcesCapability(subscribe=True)
        )

    async def list_tools(self) -> list[types.Tool]:
        return [types.Tool(name="whoami", input_schema={"type": "object", "properties": {}})]

    async def call_tool(self, params: types.CallToolRequestParams, downstream: Downstream) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(type="text", text=f"caller={downstream.caller}")])

    async def list_resources(self) -> list[types.Resource]:
        return [types.Resource(uri=WATCHED, name="watched")]

    async def subscribe(self, uri: str, downstream: Downstream) -> None:
        self.subscriptions[downstream.caller] += 1

    async def unsubscribe(self, uri: str, downstream: Downstream) -> None:
        self.subscriptions[downstream.caller] -= 1


@dataclass
class Served:
    url: str
    runtime: Runtime
    source: WhoAmI


@contextlib.asynccontextmanager
async def serve(*, trust_caller_header: bool) -> AsyncIterator[Served]:
    source = WhoAmI()
    agg = Aggregator([source])
    runtime = Runtime(agg, trust_caller_header=trust_caller_header)

    @contextlib.asynccontextmanager
    async def started(tg: anyio.abc.TaskGroup) -> AsyncIterator[None]:
        await agg.start(tg)
        await agg.refresh(strict=True)
        yield

    app = build_app(runtime, build_mcp_server(runtime), lifespan_hook=started)
    async with uvicorn_serving(app, start_seconds=10) as base:
        yield Served(f"{base}/mcp", runtime, source)


async def _whoami(url: str, mode: str, caller: str | None) -> str:
    async with connect(url, mode, caller=caller) as client:
        result = await client.call_tool("whoami", {})
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text.removeprefix("caller=")


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_caller_header_is_ignored_unless_trusted(mode: str) -> None:
    async with serve(trust_caller_header=False) as served:
        spoofed = await _whoami(served.url, mode, caller="alice")
    assert "alice" not in spoofed
    if mode == "legacy":
        assert spoofed.startswith("session:")  # scoped by its own handshake session
    else:
        assert spoofed == ""  # stateless and unnamed: anonymous

    async with serve(trust_caller_header=True) as served:
        assert await _whoami(served.url, mode, caller="alice") == "alice"
        anonymous = await _whoami(served.url, mode, caller=None)
    assert anonymous.startswith("session:") if mode == "legacy" else anonymous == ""


async def _wait_for(condition: Any, what: str) -> None:
    with anyio.fail_after(10, shield=False):
        while not condition():
            await anyio.sleep(0.02)
    assert condition(), what


async def test_listen_buses_live_exactly_as_long_as_their_streams() -> None:
    async with serve(trust_caller_header=True) as served:
        runtime = served.runtime
        async with (
            connect(served.url, "2026-07-28", caller="alice") as alice,
            connect(served.url, "2026-07-28", caller="bob") as bob,
        ):
            async with alice.listen(tools_list_changed=True), alice.listen(resource_subscriptions=[WATCHED]):
                async with bob.listen(tools_list_changed=True):
                    assert runtime.buses["alice"].streams == 2 and runtime.buses["bob"].streams == 1
                await _wait_for(lambda: "bob" not in runtime.buses, "bob's bus outlived his only stream")
                assert runtime.buses["alice"].streams == 2
            await _wait_for(lambda: not runtime.buses, "alice's bus outlived her streams")
            assert served.source.subscriptions["alice"] == 0  # the stream's upstream subscription ended with it
        # Many short-lived anonymous streams (each its own handshake-less request) leave nothing behind.
        async with connect(served.url, "2026-07-28") as anonymous:
            for _ in range(5):
                async with anonymous.listen(tools_list_changed=True):
                    pass
        await _wait_for(lambda: not runtime.buses, "anonymous buses piled up")


async def test_handshake_connections_are_forgotten_when_they_close() -> None:
    async with serve(trust_caller_header=False) as served:
        runtime = served.runtime
        for _ in range(3):
            async with connect(served.url, "legacy") as client:
                await client.list_tools()
                with warnings.catch_warnings():  # deprecated only for 2026-07-28; this is a handshake client
                    warnings.simplefilter("ignore", MCPDeprecationWarning)
                    await client.session.subscribe_resource(WATCHED)  # never unsubscribed: the client just leaves
                assert len(runtime.legacy_connections) == 1
                assert len(runtime.subscribers[WATCHED]) == 1
        await _wait_for(lambda: not runtime.legacy_connections, "closed handshake connections are still kept")
        await _wait_for(lambda: not runtime.subscribers, "subscriptions of closed connections are still kept")
        assert all(count == 0 for count in served.source.subscriptions.values())  # and unsubscribed upstream
        assert len(served.source.subscriptions) == 3  # one handshake session each: `session:<id>`


def test_metric_names_are_bounded_per_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "MAX_NAMES_PER_SOURCE", 3)
    for i in range(10):
        metrics.call_series("cap-test", "tools/call", f"t{i}").calls.inc()
    exposed = metrics.exposition().decode()
    names = re.findall(r'mcp_adapter_calls_total\{name="([^"]+)",op="tools/call",source="cap-test"\}', exposed)
    assert sorted(names) == ["other", "t0", "t1", "t2"]  # at most 3 names, then one series for the rest
    labels = {"name": "other", "op": "tools/call", "source": "cap-test"}
    assert metrics.REGISTRY.get_sample_value("mcp_adapter_calls_total", labels) == 7
