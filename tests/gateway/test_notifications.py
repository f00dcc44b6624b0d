"""Upstream list changes and resource updates reach gateway clients of both eras, through
feature server -> adapter -> gateway: handshake-era sessions on their GET stream (resource
updates only to sessions that subscribed), 2026-07-28 clients on `subscriptions/listen`; and a
subscription made on one replica is honoured by the replica holding the session's stream."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest
from mcp.client.session import IncomingMessage

from tests.gateway.support import (
    ADMIN_HEADERS,
    LEGACY,
    MODERN,
    GatewayProc,
    Spawn,
    mcp_client,
    profile,
    rpc,
    start_adapter,
    start_feature,
    start_gateway,
    write_config,
)

pytestmark = pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
WAIT = 10.0
WATCHED = "test://watched-resource"
# Admits the profile's own callers' resources (each request's caller has tenant "acme").
TENANT_RULE = [{"name": "acme-only", "effect": "allow", "when": 'caller.tenant == "acme"', "kinds": ["resource"]}]


@pytest.fixture(scope="module")
def adapter_url(spawn_module: Spawn, tmp_path_factory: pytest.TempPathFactory) -> str:
    _, feature = start_feature(spawn_module, name="notify-feature")
    return start_adapter(spawn_module, tmp_path_factory.mktemp("notify"), feature, name="notify-adapter")


def routing_doc(adapter_url: str) -> dict[str, Any]:
    return {
        "tenants": [{"id": "acme"}],
        "profiles": [
            profile("open", "acme", [("ad", adapter_url)], auth={"mode": "none"}),
            profile("other", "acme", [("ad", adapter_url)], auth={"mode": "none"}),
            profile("ruled", "acme", [("ad", adapter_url)], auth={"mode": "none"}, policy={"rules": TENANT_RULE}),
        ],
    }


@pytest.fixture(scope="module")
def gateway(spawn_module: Spawn, adapter_url: str, tmp_path_factory: pytest.TempPathFactory) -> GatewayProc:
    config = write_config(tmp_path_factory.mktemp("notify-gw") / "routing.yaml", routing_doc(adapter_url))
    return start_gateway(spawn_module, config, name="notify-gateway")


def open_streams(gateway: GatewayProc) -> float:
    for line in httpx.get(f"{gateway.base}/metrics", headers=ADMIN_HEADERS, timeout=5).text.splitlines():
        if line.startswith("mcp_gateway_notification_streams "):
            return float(line.split()[1])
    return -1


async def wait_streams(gateway: GatewayProc, count: int) -> None:
    deadline = time.monotonic() + WAIT
    while open_streams(gateway) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert open_streams(gateway) >= count


async def until_seen(trigger: Callable[[], Awaitable[Any]], seen: Callable[[], Awaitable[Any]]) -> Any:
    """Trigger an upstream change until the notification shows up: a new subscription is set up
    asynchronously through every hop (gateway -> adapter -> server), and events have no replay."""
    deadline = time.monotonic() + WAIT
    while True:
        await trigger()
        try:
            with anyio.fail_after(1.0):
                return await seen()
        except TimeoutError:
            if time.monotonic() > deadline:
                raise


class Inbox:
    """Notifications one handshake-era client received."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.arrived = anyio.Event()

    async def __call__(self, message: IncomingMessage) -> None:
        if not isinstance(message, Exception):
            self.messages.append(message)
            self.arrived.set()

    async def wait_for(self, kind: type, timeout: float = WAIT) -> Any:
        with anyio.fail_after(timeout):
            while True:
                found = [m for m in self.messages if isinstance(m, kind)]
                if found:
                    return found[-1]
                self.arrived = anyio.Event()
                await self.arrived.wait()


async def test_handshake_sessions_get_list_changes_and_their_resource_updates(gateway: GatewayProc) -> None:
    watcher, bystander = Inbox(), Inbox()
    url = gateway.url("open")
    async with (
        mcp_client(url, message_handler=watcher) as watching,
        mcp_client(url, message_handler=bystander) as other,
        mcp_client(url, mode=MODERN) as actor,
    ):
        await watching.subscribe_resource(WATCHED)
        await other.list_tools()
        await wait_streams(gateway, 2)

        await actor.call_tool("add_tool", {"name": "dyn_handshake"})
        await watcher.wait_for(types.ToolListChangedNotification)
        await bystander.wait_for(types.ToolListChangedNotification)
        names = {t.name for t in (await watching.list_tools(cache_mode="refresh")).tools}
        assert "dyn_handshake" in names
        assert (await watching.call_tool("dyn_handshake", {"text": "hi"})).content[0].text == "dyn_handshake: hi"

        updated = await until_seen(
            lambda: actor.call_tool("update_resource", {"text": "changed for the watcher"}),
            lambda: watcher.wait_for(types.ResourceUpdatedNotification),
        )
        assert str(updated.params.uri) == WATCHED
        read = await watching.read_resource(WATCHED)
        assert read.contents[0].text == "changed for the watcher"
        await asyncio.sleep(0.5)  # the bystander never subscribed: nothing for it
        assert not [m for m in bystander.messages if isinstance(m, types.ResourceUpdatedNotification)]

        await watching.unsubscribe_resource(WATCHED)
        await asyncio.sleep(0.3)
        count = len(watcher.messages)
        await actor.call_tool("update_resource", {"text": "after unsubscribe"})
        await actor.call_tool("remove_tool", {"name": "dyn_handshake"})
        await asyncio.sleep(1.0)
        assert not [m for m in watcher.messages[count:] if isinstance(m, types.ResourceUpdatedNotification)]


async def test_a_subscription_admitted_by_policy_rules_gets_its_updates(gateway: GatewayProc) -> None:
    """The session's notification stream holds the upstream subscription as the session's caller,
    so a resource the CEL rules admit for that caller is watched upstream (not judged anonymously)."""
    watcher = Inbox()
    async with (
        mcp_client(gateway.url("ruled"), message_handler=watcher) as watching,
        mcp_client(gateway.url("open"), mode=MODERN) as actor,
    ):
        await watching.subscribe_resource(WATCHED)
        updated = await until_seen(
            lambda: actor.call_tool("update_resource", {"text": "for the ruled watcher"}),
            lambda: watcher.wait_for(types.ResourceUpdatedNotification),
        )
        assert str(updated.params.uri) == WATCHED


async def test_modern_listen_gets_list_changes_and_resource_updates(gateway: GatewayProc) -> None:
    url = gateway.url("open")
    async with mcp_client(url, mode=MODERN) as watcher, mcp_client(url, mode=MODERN) as actor:
        async with watcher.listen(tools_list_changed=True) as subscription:
            await actor.call_tool("add_tool", {"name": "dyn_modern"})
            with anyio.fail_after(WAIT):
                event: Any = await subscription.__anext__()
            assert type(event).__name__ == "ToolsListChanged"
        async with watcher.listen(resource_subscriptions=[WATCHED]) as subscription:
            event = await until_seen(
                lambda: actor.call_tool("update_resource", {"text": "for the listener"}),
                subscription.__anext__,
            )
            assert type(event).__name__ == "ResourceUpdated" and str(event.uri) == WATCHED
        await actor.call_tool("remove_tool", {"name": "dyn_modern"})


async def test_subscription_on_one_replica_reaches_the_stream_on_another(
    spawn: Spawn, adapter_url: str, routing: Callable[[dict[str, Any]], Path], pg_dsn: str
) -> None:
    config = routing(routing_doc(adapter_url))
    first = start_gateway(spawn, config, dsn=pg_dsn, name="gw-notify-a")
    second = start_gateway(spawn, config, dsn=pg_dsn, name="gw-notify-b")
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    init = rpc(
        "initialize", {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    )
    response = httpx.post(first.url("open"), json=init, headers=headers, timeout=10)
    session = {**headers, "Mcp-Session-Id": response.headers["mcp-session-id"], "MCP-Protocol-Version": LEGACY}
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    httpx.post(first.url("open"), json=initialized, headers=session, timeout=10)

    received: list[dict[str, Any]] = []
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10, read=WAIT)) as client,
        client.stream("GET", second.url("open"), headers=session) as stream,
    ):
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        await wait_streams(second, 1)
        subscribe = rpc("resources/subscribe", {"uri": WATCHED}, rid=2)
        answer = httpx.post(first.url("open"), json=subscribe, headers=session, timeout=10)
        assert answer.json()["result"] == {}
        unknown = rpc("resources/subscribe", {"uri": "test://no-such-resource"}, rid=3)
        assert "error" in httpx.post(first.url("open"), json=unknown, headers=session, timeout=10).json()
        arrived = anyio.Event()

        async def read() -> None:  # in the background, so waiting with a timeout never cuts the stream
            async for line in stream.aiter_lines():
                if line.startswith("data:"):
                    received.append(json.loads(line[5:]))
                    if received[-1].get("method") == "notifications/resources/updated":
                        arrived.set()

        async with mcp_client(first.url("other"), mode=MODERN) as actor, anyio.create_task_group() as tg:
            tg.start_soon(read)
            await until_seen(lambda: actor.call_tool("update_resource", {"text": "across replicas"}), arrived.wait)
            tg.cancel_scope.cancel()
    updates = [m for m in received if m.get("method") == "notifications/resources/updated"]
    assert updates and updates[0]["params"] == {"uri": WATCHED}
