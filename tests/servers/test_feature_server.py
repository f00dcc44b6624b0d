"""The feature server, driven by the SDK's real `mcp.Client` in both protocol eras.

"legacy" = initialize handshake with a session (2025-11-25); "2026-07-28" = stateless revision.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext, IncomingMessage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.servers.launch import http_command, http_url, stdio_parameters
from tests.support.processes import ManagedProcess, free_port, start_process

# Handshake-era features (setLevel, resources/subscribe) are deprecated in 2026-07-28 but still tested here.
pytestmark = pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")

ERAS = ["legacy", "2026-07-28"]
WAIT = 10.0  # seconds to wait for an expected notification


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    port = free_port()
    process: ManagedProcess = start_process(http_command(port), name="feature-server", ready_url=http_url(port))
    yield http_url(port)
    process.stop()


async def answer_elicitation(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"answer": "blue"})


async def answer_sampling(
    context: ClientRequestContext, params: types.CreateMessageRequestParams
) -> types.CreateMessageResult:
    prompt = params.messages[0].content
    text = prompt.text if isinstance(prompt, types.TextContent) else "?"
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text=f"echo {text}"), model="fake-llm"
    )


async def answer_roots(context: ClientRequestContext) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root.model_validate({"uri": "file:///work/project", "name": "project"})])


def text_of(result: types.CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, types.TextContent))


@pytest.mark.parametrize("mode", ERAS)
async def test_content_types_and_structured_output(url: str, mode: str) -> None:
    async with Client(url, mode=mode) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert {"test_simple_text", "whoami", "slow", "add", "ask_user"} <= set(tools)
        assert tools["add"].output_schema is not None
        assert "sum" in tools["add"].output_schema["properties"]

        image = await client.call_tool("test_image_content", {})
        assert [block.type for block in image.content] == ["image"]
        audio = await client.call_tool("test_audio_content", {})
        assert isinstance(audio.content[0], types.AudioContent) and audio.content[0].mime_type == "audio/wav"
        mixed = await client.call_tool("test_multiple_content_types", {})
        assert [block.type for block in mixed.content] == ["text", "image", "resource"]

        added = await client.call_tool("add", {"a": 2, "b": 3})
        assert added.structured_content == {"a": 2, "b": 3, "sum": 5}


@pytest.mark.parametrize("mode", ERAS)
async def test_tool_error_and_protocol_error(url: str, mode: str) -> None:
    async with Client(url, mode=mode) as client:
        failed = await client.call_tool("fail", {"message": "disk full"})
        assert failed.is_error is True and text_of(failed) == "disk full"
        with pytest.raises(MCPError) as raised:
            await client.call_tool("protocol_error", {"code": -32001, "message": "upstream said no"})
        assert raised.value.error.code == -32001
        assert "upstream said no" in raised.value.error.message


@pytest.mark.parametrize("mode", ERAS)
async def test_elicitation_sampling_and_roots_round_trip(url: str, mode: str) -> None:
    async with Client(
        url,
        mode=mode,
        elicitation_callback=answer_elicitation,
        sampling_callback=answer_sampling,
        list_roots_callback=answer_roots,
    ) as client:
        asked = await client.call_tool("ask_user", {"question": "Favourite colour?"})
        assert text_of(asked) == "user answered: blue"
        sampled = await client.call_tool("sample_llm", {"prompt": "hi"})
        assert text_of(sampled) == "model fake-llm said: echo hi"
        roots = await client.call_tool("client_roots", {})
        assert "file:///work/project" in text_of(roots)


async def test_input_required_rounds_in_modern_era(url: str) -> None:
    async def name_or_colour(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        field = "name" if "name" in params.message else "color"
        return types.ElicitResult(action="accept", content={field: {"name": "Ada", "color": "green"}[field]})

    async with Client(url, mode="2026-07-28", elicitation_callback=name_or_colour) as client:
        result = await client.call_tool("test_input_required_result_multi_round", {})
        assert text_of(result) == "Done: Ada likes green"


@pytest.mark.parametrize("mode", ERAS)
async def test_progress_notifications(url: str, mode: str) -> None:
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    async with Client(url, mode=mode) as client:
        result = await client.call_tool("progress_steps", {"steps": 3, "delay": 0.01}, progress_callback=on_progress)
    assert text_of(result) == "done 3 steps"
    assert seen == [(1, 3), (2, 3), (3, 3)]


async def test_log_level_filters_handshake_era_logs(url: str) -> None:
    logs: list[str] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(str(params.data))

    async with Client(url, mode="legacy", logging_callback=on_log) as client:
        await client.set_logging_level("info")
        await client.call_tool("test_tool_with_logging", {})
        assert logs == ["Tool execution started", "Tool processing data", "Tool execution completed"]
        await client.set_logging_level("error")
        await client.call_tool("test_tool_with_logging", {})
        assert len(logs) == 3


async def test_modern_era_logs_only_when_opted_in(url: str) -> None:
    logs: list[str] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(str(params.data))

    async with Client(url, mode="2026-07-28", logging_callback=on_log) as client:
        await client.call_tool("test_tool_with_logging", {})
    assert logs == []
    async with Client(url, mode="2026-07-28", logging_callback=on_log, log_level="info") as client:
        await client.call_tool("test_tool_with_logging", {})
    assert logs == ["Tool execution started", "Tool processing data", "Tool execution completed"]


async def test_whoami_isolates_handshake_sessions(url: str) -> None:
    async with Client(url, mode="legacy") as first, Client(url, mode="legacy") as second:
        one = (await first.call_tool("whoami", {})).structured_content
        two = (await second.call_tool("whoami", {})).structured_content
        again = (await first.call_tool("whoami", {})).structured_content
    assert one is not None and two is not None and again is not None
    assert one["session_id"] and two["session_id"] and one["session_id"] != two["session_id"]
    assert again["session_id"] == one["session_id"]
    assert one["protocol_version"] == "2025-11-25"


async def test_whoami_in_modern_era_has_no_session_and_hides_credentials(url: str) -> None:
    transport_headers = {"Authorization": "Bearer secret-token", "X-Tenant": "acme"}
    async with (
        httpx2.AsyncClient(headers=transport_headers) as http,
        Client(streamable_http_client(url, http_client=http), mode="2026-07-28") as client,
    ):
        who = (await client.call_tool("whoami", {})).structured_content
    assert who is not None
    assert who["session_id"] is None
    assert who["protocol_version"] == "2026-07-28"
    assert who["headers"]["x-tenant"] == "acme"
    assert who["headers"]["authorization"] == "<redacted>"
    assert "secret-token" not in json.dumps(who)


@pytest.mark.parametrize("mode", ERAS)
async def test_slow_tool_times_out_on_the_client(url: str, mode: str) -> None:
    async with Client(url, mode=mode) as client:
        with pytest.raises((MCPError, TimeoutError)):
            await client.call_tool("slow", {"seconds": 30}, read_timeout_seconds=0.5)
        assert text_of(await client.call_tool("slow", {"seconds": 0})) == "slept 0.0s"


async def test_tool_list_changed_reaches_handshake_sessions(url: str) -> None:
    changed = anyio.Event()

    async def on_message(message: IncomingMessage) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with Client(url, mode="legacy", message_handler=on_message) as watcher, Client(url, mode="legacy") as actor:
        await actor.call_tool("add_tool", {"name": "dynamic_legacy"})
        with anyio.fail_after(WAIT):
            await changed.wait()
        names = {tool.name for tool in (await watcher.list_tools(cache_mode="refresh")).tools}
        assert "dynamic_legacy" in names
        result = await watcher.call_tool("dynamic_legacy", {"text": "hi"})
        assert text_of(result) == "dynamic_legacy: hi"
        await actor.call_tool("remove_tool", {"name": "dynamic_legacy"})


async def test_tool_list_changed_reaches_modern_listeners(url: str) -> None:
    async with Client(url, mode="2026-07-28") as watcher, Client(url, mode="2026-07-28") as actor:
        async with watcher.listen(tools_list_changed=True) as subscription:
            await actor.call_tool("add_tool", {"name": "dynamic_modern"})
            with anyio.fail_after(WAIT):
                event: Any = await subscription.__anext__()
        assert type(event).__name__ == "ToolsListChanged"
        await actor.call_tool("remove_tool", {"name": "dynamic_modern"})


async def test_resource_subscription_updates_in_handshake_era(url: str) -> None:
    updated: list[str] = []
    got = anyio.Event()

    async def on_message(message: IncomingMessage) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updated.append(str(message.params.uri))
            got.set()

    async with Client(url, mode="legacy", message_handler=on_message) as watcher, Client(url, mode="legacy") as actor:
        await watcher.subscribe_resource("test://watched-resource")
        await actor.call_tool("update_resource", {"text": "new content"})
        with anyio.fail_after(WAIT):
            await got.wait()
        read = await watcher.read_resource("test://watched-resource")
    assert updated == ["test://watched-resource"]
    assert isinstance(read.contents[0], types.TextResourceContents) and read.contents[0].text == "new content"


@pytest.mark.parametrize("mode", ERAS)
async def test_resources_prompts_and_completion(url: str, mode: str) -> None:
    async with Client(url, mode=mode) as client:
        templates = (await client.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["test://template/{id}/data"]
        read = await client.read_resource("test://template/7/data")
        assert isinstance(read.contents[0], types.TextResourceContents)
        assert json.loads(read.contents[0].text)["id"] == "7"
        with pytest.raises(MCPError) as missing:
            await client.read_resource("test://does-not-exist")
        assert missing.value.error.code == types.INVALID_PARAMS

        prompt = await client.get_prompt("test_prompt_with_arguments", {"arg1": "a", "arg2": "b"})
        first = prompt.messages[0].content
        assert isinstance(first, types.TextContent) and first.text == "Prompt with arguments: arg1='a', arg2='b'"
        completion = await client.complete(
            types.PromptReference(type="ref/prompt", name="test_prompt_with_arguments"),
            {"name": "arg1", "value": "par"},
        )
        assert completion.completion.values == ["paris", "park", "party"]


async def test_stdio_transport_passes_environment() -> None:
    async with Client(stdio_parameters(env={"FEATURE_GREETING": "hello from env"}), mode="legacy") as client:
        assert text_of(await client.call_tool("get_env", {"name": "FEATURE_GREETING"})) == "hello from env"
        refused = await client.call_tool("get_env", {"name": "HOME"})
        assert refused.is_error is True
        who = (await client.call_tool("whoami", {})).structured_content
        assert who is not None and who["session_id"] is None and who["headers"] == {}
