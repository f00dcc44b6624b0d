"""Resource subscriptions, logging and cancellation through the adapter, in both eras and across them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest

from tests.adapter.support import PYTHON, ROOT, connect, feature_stdio, start_adapter

WATCHED = "test://watched-resource"
PROBE_SERVER = str(ROOT / "tests" / "adapter" / "servers" / "probe_server.py")


def _updates(sink: list[str]) -> Any:
    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            sink.append(message.params.uri)

    return on_message


async def _wait_for(predicate: Any, what: str) -> None:
    for _ in range(100):  # bounded: notifications arrive within milliseconds
        if predicate():
            return
        await anyio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def _legacy_subscriber_sees_update(url: str) -> None:
    seen: list[str] = []
    async with connect(url, "legacy", message_handler=_updates(seen)) as client:
        await client.subscribe_resource(WATCHED)
        await client.call_tool("update_resource", {"text": "legacy changed it"})
        await _wait_for(lambda: WATCHED in seen, "notifications/resources/updated")
        text = (await client.read_resource(WATCHED)).contents[0]
        assert isinstance(text, types.TextResourceContents) and text.text == "legacy changed it"
        await client.unsubscribe_resource(WATCHED)
        seen.clear()
        await client.call_tool("update_resource", {"text": "after unsubscribe"})
        await anyio.sleep(0.3)
    assert seen == []  # unsubscribed upstream too


async def _modern_listener_sees_update(url: str) -> None:
    async with connect(url, "2026-07-28") as client:
        async with client.listen(resource_subscriptions=[WATCHED]) as stream:
            assert stream.honored.resource_subscriptions == [WATCHED]
            await client.call_tool("update_resource", {"text": "modern changed it"})
            with anyio.fail_after(5):
                event = await stream.__anext__()
        assert getattr(event, "uri", None) == WATCHED


@pytest.mark.parametrize("upstream", ["auto", "legacy", "2026-07-28"])
async def test_resource_subscriptions_in_both_eras(spawn: Any, tmp_path: Path, upstream: str) -> None:
    # auto: each client era reaches an upstream session of its own era; legacy: a 2026-07-28 client's listen
    # becomes resources/subscribe upstream; 2026-07-28: a handshake client's subscribe becomes an upstream listen.
    adapter = start_adapter(spawn, tmp_path, [feature_stdio(prefixPolicy="never", protocol=upstream)])
    await _legacy_subscriber_sees_update(adapter.mcp_url)
    await _modern_listener_sees_update(adapter.mcp_url)


@pytest.mark.parametrize("upstream", ["auto", "2026-07-28"])
async def test_set_level_is_forwarded_per_caller(spawn: Any, tmp_path: Path, upstream: str) -> None:
    # 2026-07-28 upstream: handshake clients are bridged; they get logs without opting in per request,
    # at the level they set, as from a handshake server.
    source = feature_stdio(prefixPolicy="never", scope="per-caller", protocol=upstream)
    adapter = start_adapter(spawn, tmp_path, [source], server={"trustCallerHeader": True})
    logs: dict[str, list[str]] = {"alice": [], "bob": []}

    def sink(who: str) -> Any:
        async def on_log(params: types.LoggingMessageNotificationParams) -> None:
            logs[who].append(str(params.data))

        return on_log

    async with (
        connect(adapter.mcp_url, "legacy", caller="alice", logging_callback=sink("alice")) as alice,
        connect(adapter.mcp_url, "legacy", caller="bob", logging_callback=sink("bob")) as bob,
    ):
        await alice.set_logging_level("error")
        await alice.call_tool("progress_steps", {"steps": 2, "delay": 0})
        await bob.call_tool("progress_steps", {"steps": 2, "delay": 0})
        await alice.set_logging_level("debug")
        await alice.call_tool("progress_steps", {"steps": 1, "delay": 0})
    assert logs["bob"] == ["step 1/2", "step 2/2"]  # alice's level never reached bob's upstream session
    assert logs["alice"] == ["step 1/1"]  # nothing while at "error", logs again once back at "debug"


async def test_modern_client_gets_logs_only_when_it_asks(spawn: Any, tmp_path: Path) -> None:
    adapter = start_adapter(spawn, tmp_path, [feature_stdio(prefixPolicy="never")])
    got: dict[str | None, list[str]] = {None: [], "info": []}
    for level in got:

        async def on_log(params: types.LoggingMessageNotificationParams, level: str | None = level) -> None:
            got[level].append(str(params.data))

        async with connect(adapter.mcp_url, "2026-07-28", logging_callback=on_log, log_level=level) as client:
            await client.call_tool("progress_steps", {"steps": 2, "delay": 0})
    assert got == {None: [], "info": ["step 1/2", "step 2/2"]}


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_cancelled_call_cancels_the_upstream_call(spawn: Any, tmp_path: Path, mode: str) -> None:
    probe = {"name": "probe", "type": "stdio", "command": PYTHON, "args": [PROBE_SERVER]}
    adapter = start_adapter(spawn, tmp_path, [probe])
    async with connect(adapter.mcp_url, mode) as client:
        await client.call_tool("pid", {})  # the upstream session of this era is up
        with anyio.move_on_after(1.0):
            await client.call_tool("slow", {"seconds": 30})
            raise AssertionError("the slow call should still be running")
        count = 0
        for _ in range(50):  # bounded: the courtesy cancel reaches the child within milliseconds
            result = await client.call_tool("cancellations", {})
            count = int(result.content[0].text)  # type: ignore[union-attr]
            if count:
                break
            await anyio.sleep(0.1)
    assert count == 1
    assert re.search(r"probe: slow call cancelled \(1\)", adapter.process.log_text())


async def test_feature_server_slow_call_is_cancelled_upstream(spawn: Any, tmp_path: Path) -> None:
    # The feature server's `slow` tool: once the client cancels, the adapter holds no request to the upstream.
    adapter = start_adapter(spawn, tmp_path, [feature_stdio(prefixPolicy="never")])
    async with connect(adapter.mcp_url, "legacy") as client, httpx.AsyncClient() as http:
        await client.call_tool("echo", {"text": "warm up"})
        with anyio.move_on_after(1.0) as scope:
            await client.call_tool("slow", {"seconds": 20})
        assert scope.cancelled_caught
        inflight = -1
        for _ in range(50):  # bounded
            inflight = (await http.get(f"{adapter.url}/map")).json()["sources"]["feat"]["inflight"]
            if inflight == 0:
                break
            await anyio.sleep(0.1)
        assert inflight == 0
        echoed = await client.call_tool("echo", {"text": "still serving"})
        assert echoed.content[0].text == "still serving"  # type: ignore[union-attr]
