"""Helpers for gateway tests: start gateways and upstreams, talk MCP and raw JSON-RPC."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.servers.launch import http_command, http_url
from tests.support.processes import ManagedProcess, free_port

ADMIN_TOKEN = "test-admin-token-0123456789"
PEPPER = "test-pepper-0123456789abcdef"
# /metrics and /openapi.json on the public port need the admin token too.
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
MODERN = "2026-07-28"
LEGACY = "2025-11-25"

Spawn = Callable[..., ManagedProcess]


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def profile(pid: str, tenant: str, upstreams: list[tuple[str, str]], **extra: Any) -> dict[str, Any]:
    return {"id": pid, "tenant": tenant, "upstreams": [{"name": n, "url": u} for n, u in upstreams], **extra}


def start_feature(spawn: Spawn, name: str = "feature") -> tuple[ManagedProcess, str]:
    port = free_port()
    return spawn(http_command(port), name=name, ready_url=http_url(port)), http_url(port)


def start_adapter(
    spawn: Spawn, config_dir: Path, upstream_url: str, name: str = "adapter", *, trust_caller: bool = False
) -> str:
    """An adapter process fronting one remote MCP server (unprefixed); returns its /mcp URL.

    `trust_caller`: it trusts the gateway's `x-mcp-caller` and `x-mcp-client-era` (as the operator deploys it)."""
    port = free_port()
    config = config_dir / f"{name}.yaml"
    settings: dict[str, Any] = {"sources": [{"name": "feat", "type": "mcp", "url": upstream_url}]}
    if trust_caller:
        settings["server"] = {"trustCallerHeader": True}
    config.write_text(yaml.safe_dump(settings))
    cmd = [sys.executable, "-m", "mcp_adapter.cli", "--config", str(config), "--port", str(port)]
    spawn(cmd, name=name, ready_url=f"http://127.0.0.1:{port}/readyz", timeout=60)
    return f"http://127.0.0.1:{port}/mcp"


class GatewayProc:
    def __init__(self, process: ManagedProcess, port: int) -> None:
        self.process = process
        self.port = port
        self.base = f"http://127.0.0.1:{port}"

    def url(self, profile_id: str) -> str:
        return f"{self.base}/{profile_id}/mcp"

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)


def start_gateway(
    spawn: Spawn,
    config: Path,
    *,
    dsn: str | None = None,
    name: str = "gateway",
    env: dict[str, str] | None = None,
    port: int | None = None,
    args: list[str] | None = None,
) -> GatewayProc:
    port = port or free_port()
    cmd = [sys.executable, "-m", "mcp_gateway.cli", "serve", "--config", str(config), "--port", str(port)]
    cmd += args or []
    if dsn:
        cmd += ["--database-url", dsn]
    full_env = {"MCP_GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN, "MCP_GATEWAY_KEY_PEPPER": PEPPER, **(env or {})}
    process = spawn(cmd, name=name, env=full_env, ready_url=f"http://127.0.0.1:{port}/readyz")
    return GatewayProc(process, port)


@contextlib.asynccontextmanager
async def mcp_client(
    url: str, headers: dict[str, str] | None = None, mode: str = "legacy", **options: Any
) -> AsyncIterator[Client]:
    async with (
        create_mcp_http_client(headers=headers or {}) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode, **options) as client,
    ):
        yield client


def rpc(method: str, params: dict[str, Any] | None = None, rid: int = 1) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        body["params"] = params
    return body


def open_session(url: str, headers: dict[str, str] | None = None) -> str:
    """A handshake-era initialize over raw HTTP; returns the Mcp-Session-Id the gateway signed."""
    init = rpc(
        "initialize",
        {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    )
    base = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    response = httpx.post(url, json=init, headers={**base, **(headers or {})}, timeout=10)
    assert response.status_code == 200, response.text
    return response.headers["mcp-session-id"]


def session_ping(url: str, session: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """A ping inside an existing session (the status tells whether the gateway accepted the session)."""
    base = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    base["Mcp-Session-Id"] = session
    return httpx.post(url, json=rpc("ping", rid=2), headers={**base, **(headers or {})}, timeout=10)


def modern_call(name: str, arguments: dict[str, Any], rid: int = 1) -> dict[str, Any]:
    """A 2026-07-28 tools/call envelope."""
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
    return rpc("tools/call", {"name": name, "arguments": arguments, "_meta": meta}, rid)


def modern_headers(method: str, name: str | None = None, **extra: str) -> dict[str, str]:
    headers = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": method,
        **extra,
    }
    if name is not None:
        headers["Mcp-Name"] = name
    return headers


END_CHUNK = b"0\r\n\r\n"  # a chunked body's terminating chunk


class TcpProxy:
    """A loopback TCP forwarder whose target can be switched or cut (a load balancer / network stand-in).

    It runs its own event loop in a thread, so it keeps forwarding while the test blocks.
    """

    def __init__(self, target_port: int | None, end_chunk_delay: float = 0.0) -> None:
        self.target_port = target_port
        # Answers' ends held back this long: a chunked body's terminating chunk in a later segment, as
        # a busy upstream sends it, after the final SSE event the client acts on.
        self.end_chunk_delay = end_chunk_delay
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self.accepted = 0  # connections opened through the proxy (counted to check connection reuse)
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def start(self) -> TcpProxy:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(asyncio.start_server(self._handle, "127.0.0.1", 0), self._loop)
        self._server = future.result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.target_port is None:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._conns.update({writer, up_writer})

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, delay: float = 0.0) -> None:
            try:
                while data := await src.read(65536):
                    if delay and data.endswith(b"\r\n" + END_CHUNK):  # held back after the last data chunk
                        dst.write(data[: -len(END_CHUNK)])
                        await dst.drain()
                        await asyncio.sleep(delay)
                        data = END_CHUNK
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer, self.end_chunk_delay))
        self._conns.difference_update({writer, up_writer})

    def _cut(self) -> None:
        for conn in list(self._conns):
            conn.close()
        self._conns.clear()

    async def _cut_and_wait(self) -> None:
        conns = list(self._conns)
        self._cut()
        for conn in conns:
            with contextlib.suppress(OSError):
                await conn.wait_closed()

    def cut(self) -> None:
        """Drop every open connection (new ones go to the current target).

        Returns once the sockets are closed, so a client's next request cannot race onto a
        connection that is about to be dropped (it sees the close and opens a new one)."""
        asyncio.run_coroutine_threadsafe(self._cut_and_wait(), self._loop).result(10)

    async def close(self) -> None:
        def stop() -> None:
            self._cut()
            if self._server:
                self._server.close()
            self._loop.stop()

        self._loop.call_soon_threadsafe(stop)
        self._thread.join(5)
