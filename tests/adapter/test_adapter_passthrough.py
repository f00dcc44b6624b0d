"""2026-07-28 `tools/call` relayed to a remote 2026-07-28 source without decoding (`passthrough.py`):
same results, errors, progress, timeouts, metrics and interceptor semantics as the SDK path.

The upstream is the feature server over real HTTP; the adapter runs as a real process, except
for the interceptor test, which serves the adapter's app from a uvicorn inside the test process
so that it can install an interceptor (what an embedder such as the gateway does).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError
from mcp_adapter.aggregate import Aggregator, Proceed, ToolCall, ToolResult
from mcp_adapter.app import make_source
from mcp_adapter.config import parse_config
from mcp_adapter.metrics import REGISTRY
from mcp_adapter.passthrough import RelayError
from mcp_adapter.server import Runtime, build_app, build_mcp_server
from mcp_adapter.upstream import UNAVAILABLE

from tests.adapter.support import FEATURE_SERVER, PYTHON, connect, start_adapter
from tests.support.asgi_server import uvicorn_serving
from tests.support.processes import free_port


@pytest.fixture
def feature_http(spawn: Any) -> str:
    port = free_port()
    spawn(
        [PYTHON, FEATURE_SERVER, "--transport", "http", "--port", str(port)],
        name="feature-http",
        ready_url=f"http://127.0.0.1:{port}/mcp",
    )
    return f"http://127.0.0.1:{port}/mcp"


def _remote(url: str, **extra: Any) -> dict[str, Any]:
    return {"name": "remote", "type": "mcp", "url": url, "prefixPolicy": "always", **extra}


def _text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


def _metric(text: str, metric: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{metric}{{{wanted}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_relayed_calls_answer_as_the_sdk_path_does(spawn: Any, tmp_path: Path, feature_http: str) -> None:
    adapter = start_adapter(spawn, tmp_path, [_remote(feature_http)], server={"name": "edge-adapter"})
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with connect(adapter.mcp_url, "2026-07-28", caller="mallory") as c:
        echoed = await c.call_tool("remote__echo", {"text": "hello"})
        assert _text(echoed) == "hello" and not echoed.is_error
        identity = (echoed.meta or {}).get("io.modelcontextprotocol/serverInfo") or {}
        assert identity.get("name") == "edge-adapter"  # the adapter's stamp, not the upstream's

        added = await c.call_tool("remote__add", {"a": 2, "b": 40})
        assert added.structured_content == {"a": 2, "b": 40, "sum": 42}

        done = await c.call_tool("remote__progress_steps", {"steps": 3}, progress_callback=on_progress)  # type: ignore[arg-type]
        assert _text(done) == "done 3 steps" and progress == [1.0, 2.0, 3.0]  # relayed live over SSE

        failed = await c.call_tool("remote__fail", {"message": "nope"})
        assert failed.is_error and _text(failed) == "nope"
        with pytest.raises(MCPError, match="requested protocol error"):
            await c.call_tool("remote__protocol_error", {})

        seen = await c.call_tool("remote__whoami", {})
        assert seen.structured_content is not None
        upstream_headers = seen.structured_content["headers"]
        assert upstream_headers["mcp-name"] == "whoami"  # renamed with the body
        assert "x-mcp-caller" not in upstream_headers  # the client's headers are not passed on wholesale

    async with connect(adapter.mcp_url, "legacy") as legacy:  # handshake era: the SDK path, same answer
        assert _text(await legacy.call_tool("remote__echo", {"text": "hello"})) == "hello"

    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"{adapter.url}/metrics")).text
    assert _metric(metrics, "mcp_adapter_passthrough_total", source="remote") == 6
    calls = {"source": "remote", "op": "tools/call"}
    assert _metric(metrics, "mcp_adapter_calls_total", name="remote__echo", **calls) == 2
    assert _metric(metrics, "mcp_adapter_errors_total", name="remote__fail", **calls) == 1
    assert _metric(metrics, "mcp_adapter_errors_total", name="remote__protocol_error", **calls) == 1


async def test_relayed_calls_keep_the_source_timeout(spawn: Any, tmp_path: Path, feature_http: str) -> None:
    adapter = start_adapter(spawn, tmp_path, [_remote(feature_http, timeoutSeconds=1)])
    async with connect(adapter.mcp_url, "2026-07-28") as c:
        with anyio.fail_after(10), pytest.raises(MCPError) as caught:
            await c.call_tool("remote__slow", {"seconds": 5})
        assert "did not answer tools/call 'remote__slow' within 1s (timeoutSeconds)" in caught.value.error.message
        assert _text(await c.call_tool("remote__echo", {"text": "still fine"})) == "still fine"


@contextlib.asynccontextmanager
async def _in_process_adapter(upstream: str, interceptor: Any) -> AsyncIterator[str]:
    config = parse_config({"sources": [_remote(upstream)]})
    agg = Aggregator([], interceptor=interceptor)
    agg.sources["remote"] = make_source(config.sources[0], agg)
    runtime = Runtime(agg, trust_caller_header=True)

    @contextlib.asynccontextmanager
    async def started(tg: anyio.abc.TaskGroup) -> AsyncIterator[None]:
        await agg.start(tg)
        await agg.wait_ready(10)
        await agg.refresh(strict=True)
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                await agg.stop()

    app = build_app(runtime, build_mcp_server(runtime), lifespan_hook=started)
    async with uvicorn_serving(app) as base:
        yield f"{base}/mcp"


async def test_the_interceptor_sees_and_can_replace_relayed_calls(feature_http: str) -> None:
    seen: list[tuple[ToolCall, Any]] = []

    async def intercept(call: ToolCall, proceed: Proceed) -> ToolResult:
        if call.arguments == {"text": "refuse"}:
            raise MCPError(code=-32029, message="quota exceeded (from the interceptor)")
        if call.arguments == {"text": "replace"}:
            replaced = types.TextContent(type="text", text="replaced")
            return types.CallToolResult(content=[replaced], structured_content={"result": "replaced"})
        result = await proceed()
        seen.append((call, result))
        return result

    before = REGISTRY.get_sample_value("mcp_adapter_passthrough_total", {"source": "remote"}) or 0.0
    async with (
        _in_process_adapter(feature_http, intercept) as url,
        connect(url, "2026-07-28", caller="alice") as c,
    ):
        assert _text(await c.call_tool("remote__echo", {"text": "hi"})) == "hi"
        assert _text(await c.call_tool("remote__echo", {"text": "replace"})) == "replaced"
        with pytest.raises(MCPError, match="quota exceeded") as caught:
            await c.call_tool("remote__echo", {"text": "refuse"})
        assert caught.value.error.code == -32029
    call, result = seen[0]
    assert call == ToolCall("alice", "remote__echo", "remote", "echo", {"text": "hi"})
    assert isinstance(result, types.CallToolResult) and _text(result) == "hi"  # parsed, for the interceptor
    after = REGISTRY.get_sample_value("mcp_adapter_passthrough_total", {"source": "remote"}) or 0.0
    assert after - before == 1  # only the call that proceeded went upstream, and it was relayed


@contextlib.asynccontextmanager
async def _dropping_proxy(target_port: int) -> AsyncIterator[tuple[str, anyio.CancelScope]]:
    """A real TCP proxy in front of the upstream that drops any connection whose request mentions
    `drop-me` once it has received it (a crash after the request was sent)."""

    async def pipe(src: anyio.abc.SocketStream, dst: anyio.abc.SocketStream, drop: bool) -> None:
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            async for chunk in src:
                if drop and b"drop-me" in chunk:
                    await src.aclose()
                    await dst.aclose()
                    return
                await dst.send(chunk)
        await dst.aclose()

    async def handle(client: anyio.abc.SocketStream) -> None:
        upstream = await anyio.connect_tcp("127.0.0.1", target_port)
        async with anyio.create_task_group() as tg:
            tg.start_soon(pipe, client, upstream, True)
            tg.start_soon(pipe, upstream, client, False)

    async def serve(listener: anyio.abc.SocketListener, scope: anyio.CancelScope) -> None:
        with scope:  # cancelling it closes the port: connections are refused from then on
            async with listener:
                await listener.serve(handle)

    port = free_port()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port)
    serving = anyio.CancelScope()
    async with anyio.create_task_group() as tg:
        tg.start_soon(serve, listener, serving)
        try:
            yield f"http://127.0.0.1:{port}/mcp", serving
        finally:
            tg.cancel_scope.cancel()


async def test_relay_errors_tell_unsent_from_outcome_unknown(feature_http: str) -> None:
    failures: list[RelayError] = []

    async def intercept(call: ToolCall, proceed: Proceed) -> ToolResult:
        try:
            return await proceed()
        except RelayError as exc:
            failures.append(exc)
            raise

    target_port = int(feature_http.rsplit(":", 1)[1].split("/")[0])
    async with (
        _dropping_proxy(target_port) as (upstream, serving),
        _in_process_adapter(upstream, intercept) as url,
        connect(url, "2026-07-28") as c,
    ):
        assert _text(await c.call_tool("remote__echo", {"text": "hi"})) == "hi"
        with anyio.fail_after(10), pytest.raises(MCPError, match="may or may not have run") as sent:
            await c.call_tool("remote__echo", {"text": "drop-me"})
        assert sent.value.error.code == types.INTERNAL_ERROR  # not "unavailable": never retried blindly
        serving.cancel()  # the upstream is gone: new connections are refused
        await anyio.sleep(0.1)
        with anyio.fail_after(10), pytest.raises(MCPError, match="could not be reached") as unsent:
            await c.call_tool("remote__echo", {"text": "hi again"})
        assert unsent.value.error.code == UNAVAILABLE
    assert [f.sent for f in failures] == [True, False]
