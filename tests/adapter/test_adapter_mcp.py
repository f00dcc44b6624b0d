"""The adapter fronting real MCP servers (stdio children and a remote HTTP server), in both eras."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest
import yaml

from tests.adapter.support import (
    CRASHY_SERVER,
    ERAS,
    FEATURE_SERVER,
    PYTHON,
    connect,
    feature_stdio,
    start_adapter,
)
from tests.support.processes import free_port


async def _elicit(ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"answer": "blue"})


async def _sample(ctx: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text="forty-two"), model="test-model"
    )


@pytest.fixture
def feature_adapter(spawn: Any, tmp_path: Path) -> Any:
    # The upstream speaks the handshake era, so 2026-07-28 clients exercise the era bridge.
    return start_adapter(spawn, tmp_path, [feature_stdio(prefixPolicy="always", protocol="legacy")])


@pytest.mark.parametrize("mode", ERAS)
async def test_tools_and_interactive_requests_pass_through(feature_adapter: Any, mode: str) -> None:
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with connect(feature_adapter.mcp_url, mode, elicitation_callback=_elicit, sampling_callback=_sample) as c:
        assert c.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
        names = [t.name for t in (await c.list_tools()).tools]
        assert "feat__echo" in names and "feat__add" in names
        assert all(n.startswith("feat__") for n in names)

        echoed = await c.call_tool("feat__echo", {"text": "hello"})
        assert echoed.content[0].text == "hello"  # type: ignore[union-attr]
        identity = (echoed.meta or {}).get("io.modelcontextprotocol/serverInfo") or {}
        assert identity.get("name") != "feature-server"  # the client talks to the adapter, not the upstream
        added = await c.call_tool("feat__add", {"a": 2, "b": 40})
        assert added.structured_content == {"a": 2, "b": 40, "sum": 42}

        asked = await c.call_tool("feat__ask_user", {"question": "favourite colour?"})
        assert "blue" in asked.content[0].text  # type: ignore[union-attr]
        sampled = await c.call_tool("feat__sample_llm", {"prompt": "meaning of life"})
        assert "forty-two" in sampled.content[0].text  # type: ignore[union-attr]

        done = await c.call_tool(
            "feat__progress_steps",
            {"steps": 3},
            progress_callback=on_progress,  # type: ignore[arg-type]
        )
        assert "3" in done.content[0].text  # type: ignore[union-attr]
        assert progress == [1.0, 2.0, 3.0]

        failed = await c.call_tool("feat__fail", {"message": "nope"})
        assert failed.is_error and "nope" in failed.content[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ERAS)
async def test_resources_prompts_and_completion_pass_through(feature_adapter: Any, mode: str) -> None:
    async with connect(feature_adapter.mcp_url, mode) as c:
        resources = {r.uri for r in (await c.list_resources()).resources}
        assert "test://static-text" in resources
        templates = [t.uri_template for t in (await c.list_resource_templates()).resource_templates]
        assert "test://template/{id}/data" in templates

        text = (await c.read_resource("test://static-text")).contents[0]
        assert isinstance(text, types.TextResourceContents) and "static text" in text.text
        templated = (await c.read_resource("test://template/7/data")).contents[0]
        assert isinstance(templated, types.TextResourceContents) and json.loads(templated.text)["id"] == "7"

        prompt = await c.get_prompt("feat__test_prompt_with_arguments", {"arg1": "x", "arg2": "y"})
        assert "arg1='x'" in prompt.messages[0].content.text  # type: ignore[union-attr]

        ref = types.PromptReference(type="ref/prompt", name="feat__test_prompt_with_arguments")
        completion = await c.complete(ref, {"name": "arg1", "value": "pa"})
        assert "paris" in completion.completion.values


async def test_unknown_tool_is_a_clear_error(feature_adapter: Any) -> None:
    # As SDK servers do, an unknown tool is a tool error the model can read and correct.
    async with connect(feature_adapter.mcp_url, "legacy") as c:
        result = await c.call_tool("feat__does_not_exist", {})
    assert result.is_error
    assert "not available on this endpoint; list tools" in result.content[0].text  # type: ignore[union-attr]


async def test_health_map_and_metrics(feature_adapter: Any) -> None:
    async with connect(feature_adapter.mcp_url, "legacy") as c:
        await c.call_tool("feat__echo", {"text": "count me"})
    async with httpx.AsyncClient(base_url=feature_adapter.url) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = (await http.get("/readyz")).json()
        assert ready == {"ready": True, "sources": {"feat": True}}
        mapping = (await http.get("/map")).json()
        assert mapping["tools"]["feat__echo"] == {"source": "feat", "upstreamName": "echo"}
        assert mapping["sources"]["feat"]["type"] == "stdio"
        metrics = (await http.get("/metrics")).text
    assert 'mcp_adapter_calls_total{name="feat__echo",op="tools/call",source="feat"} 1.0' in metrics
    assert "mcp_adapter_call_duration_seconds_bucket" in metrics


async def test_per_caller_sessions_are_isolated(spawn: Any, tmp_path: Path) -> None:
    adapter = start_adapter(
        spawn, tmp_path, [feature_stdio(scope="per-caller", prefixPolicy="never")], server={"trustCallerHeader": True}
    )
    async with connect(adapter.mcp_url, "2026-07-28", caller="alice") as alice:
        await alice.call_tool("update_resource", {"text": "alice's secret"})
        seen = (await alice.read_resource("test://watched-resource", cache_mode="bypass")).contents[0]
        assert isinstance(seen, types.TextResourceContents) and seen.text == "alice's secret"
        async with connect(adapter.mcp_url, "legacy", caller="bob") as bob:
            other = (await bob.read_resource("test://watched-resource")).contents[0]
            assert isinstance(other, types.TextResourceContents)
            assert "alice" not in other.text
    async with httpx.AsyncClient() as http:
        status = (await http.get(f"{adapter.url}/map")).json()["sources"]["feat"]
    assert status["callers"] == 2  # one child process per caller (plus the catalog session)


async def test_stdio_crash_fails_the_call_then_restarts(spawn: Any, tmp_path: Path) -> None:
    crashy = {
        "name": "crashy",
        "type": "stdio",
        "command": PYTHON,
        "args": [CRASHY_SERVER],
        "restart": {"initialBackoff": 0.2, "maxBackoff": 1},
    }
    adapter = start_adapter(spawn, tmp_path, [crashy])
    async with connect(adapter.mcp_url, "legacy") as c:
        first_pid = (await c.call_tool("pid", {})).content[0].text  # type: ignore[union-attr]
        with pytest.raises(Exception, match=r"closed the connection|not connected"):
            await c.call_tool("crash", {})
        second_pid = None
        for _ in range(50):  # bounded: the child restarts after ~0.2 s
            try:
                second_pid = (await c.call_tool("pid", {})).content[0].text  # type: ignore[union-attr]
                break
            except Exception:
                await anyio.sleep(0.2)
    assert second_pid is not None and second_pid != first_pid
    log = adapter.process.log_text()
    assert '"source": "crashy"' in log and "crashy serving pid" in log  # child stderr, tagged
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"{adapter.url}/metrics")).text
    assert 'mcp_adapter_child_restarts_total{source="crashy"}' in metrics


async def test_third_party_time_server_and_remote_http_server(spawn: Any, tmp_path: Path) -> None:
    time_cmd = shutil.which("mcp-server-time") or str(Path(PYTHON).parent / "mcp-server-time")
    port = free_port()
    spawn(
        [PYTHON, FEATURE_SERVER, "--transport", "http", "--port", str(port)],
        name="feature-http",
        ready_url=f"http://127.0.0.1:{port}/mcp",
    )
    sources: list[dict[str, Any]] = [
        {"name": "time", "type": "stdio", "command": time_cmd, "args": ["--local-timezone", "UTC"]},
        {"name": "remote", "type": "mcp", "url": f"http://127.0.0.1:{port}/mcp", "prefixPolicy": "always"},
    ]
    adapter = start_adapter(spawn, tmp_path, sources)
    for mode in ERAS:
        async with connect(adapter.mcp_url, mode) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            assert {"get_current_time", "convert_time", "remote__echo"} <= names
            now = await c.call_tool("get_current_time", {"timezone": "Europe/Paris"})
            assert json.loads(now.content[0].text)["timezone"] == "Europe/Paris"  # type: ignore[union-attr]
            echoed = await c.call_tool("remote__echo", {"text": f"via http {mode}"})
            assert echoed.content[0].text == f"via http {mode}"  # type: ignore[union-attr]


def test_unresolvable_collision_stops_startup(tmp_path: Path) -> None:
    sources = [feature_stdio("one", prefixPolicy="never"), feature_stdio("two", prefixPolicy="never")]
    config = tmp_path / "adapter.yaml"
    config.write_text(yaml.safe_dump({"sources": sources}))
    cmd = [PYTHON, "-m", "mcp_adapter.cli", "--config", str(config), "--port", str(free_port())]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode != 0
    assert re.search(r"start-up failed: tool name '\w+' is offered by both source 'one' and source 'two'", done.stderr)
    assert "Traceback" not in done.stderr and "NameCollision" not in done.stderr  # one clear message
    assert done.stderr.count("start-up failed") == 1


async def test_auto_prefix_only_on_collision(spawn: Any, tmp_path: Path) -> None:
    crashy = {"name": "crashy", "type": "stdio", "command": PYTHON, "args": [CRASHY_SERVER]}
    sources = [feature_stdio("one", prefixPolicy="never"), feature_stdio("two"), crashy]
    adapter = start_adapter(spawn, tmp_path, sources)
    async with connect(adapter.mcp_url, "legacy") as c:
        names = {t.name for t in (await c.list_tools()).tools}
    assert {"echo", "two__echo", "pid", "crash"} <= names  # `one` keeps names, `two` is prefixed, `crashy` unique


async def test_config_reload_keeps_untouched_sources(spawn: Any, tmp_path: Path) -> None:
    crashy = {"name": "crashy", "type": "stdio", "command": PYTHON, "args": [CRASHY_SERVER]}
    adapter = start_adapter(spawn, tmp_path, [crashy])
    async with connect(adapter.mcp_url, "legacy") as c:
        pid_before = (await c.call_tool("pid", {})).content[0].text  # type: ignore[union-attr]
    adapter.config_path.write_text(yaml.safe_dump({"sources": [crashy, feature_stdio(prefixPolicy="always")]}))
    names: set[str] = set()
    for _ in range(100):  # bounded: the file is polled every second
        async with connect(adapter.mcp_url, "legacy") as c:
            names = {t.name for t in (await c.list_tools()).tools}
            if "feat__echo" in names:
                pid_after = (await c.call_tool("pid", {})).content[0].text  # type: ignore[union-attr]
                break
        await anyio.sleep(0.2)
    assert "feat__echo" in names
    assert pid_after == pid_before  # the unchanged source kept its child process


async def test_upstream_list_changed_refreshes_the_catalog(feature_adapter: Any) -> None:
    async with connect(feature_adapter.mcp_url, "legacy") as c:
        await c.call_tool("feat__add_tool", {"name": "zap"})
        names: set[str] = set()
        for _ in range(50):  # bounded: the refresh follows the upstream notification
            names = {t.name for t in (await c.list_tools(cache_mode="bypass")).tools}
            if "feat__zap" in names:
                break
            await anyio.sleep(0.1)
        assert "feat__zap" in names
        zapped = await c.call_tool("feat__zap", {"text": "dynamic"})
        assert "dynamic" in zapped.content[0].text  # type: ignore[union-attr]
