"""deploy/compose/compose.yaml, for real: podman-compose (Debian's package) brings up
PostgreSQL, the gateway, an adapter with a stdio server and one with an OpenAPI service from
the images `make images` built; an MCP client calls tools through the gateway on a loopback
port; the gateway container restarts and the session and the API key still work; the stack
goes down with its volumes.

PostgreSQL is the official image by default; here POSTGRES_IMAGE points at the local stand-in
`scripts/build-images.sh --local-bases` makes (no registry is reachable from tests).
Marked `images`: `make images IMAGES_ARGS=--local-bases`, then `pytest -m images tests/chart/test_compose.py`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.chart.support import REPO
from tests.gateway.support import open_session, session_ping
from tests.support.processes import free_port

IMAGE_TAG = os.environ.get("MCP_TEST_IMAGE_TAG", "dev")
POSTGRES_STANDIN = "localhost/mcp-postgres-standin:15"
UP_TIMEOUT = 600.0  # the vfs storage driver copies each image per container: slow on a busy machine


@dataclass
class Stack:
    project: str
    directory: Path
    port: int
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/demo/mcp"

    def compose(self, *args: str, timeout: float = UP_TIMEOUT) -> subprocess.CompletedProcess[str]:
        command = [shutil.which("podman-compose") or "podman-compose", "-p", self.project, *args]
        return subprocess.run(
            command, cwd=self.directory, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"  # podman-compose's naming

    def logs(self, service: str) -> str:
        return podman("logs", "--tail", "40", self.container(service)).stderr[-3000:]


def podman(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=False)


def wait_ready(stack: Stack) -> None:
    deadline = time.monotonic() + UP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{stack.port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError(f"the gateway did not get ready; its log:\n{stack.logs('gateway')}")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    assert shutil.which("podman-compose"), "podman-compose is missing: run scripts/setup-containers.sh"
    for image in (f"ghcr.io/mcp-gateway/mcp-gateway:{IMAGE_TAG}", f"ghcr.io/mcp-gateway/mcp-adapter:{IMAGE_TAG}"):
        assert podman("image", "exists", image).returncode == 0, f"{image} is not built: run `make images`"
    assert podman("image", "exists", POSTGRES_STANDIN).returncode == 0, (
        f"{POSTGRES_STANDIN} is missing: run `make images IMAGES_ARGS=--local-bases`"
    )
    # The compose folder as a user has it (its relative mounts reach examples/demo).
    shutil.copytree(REPO / "deploy" / "compose", tmp_path / "deploy" / "compose")
    shutil.copytree(REPO / "examples" / "demo", tmp_path / "examples" / "demo")
    directory = tmp_path / "deploy" / "compose"
    for path in (tmp_path, tmp_path / "deploy", directory, tmp_path / "examples", tmp_path / "examples" / "demo"):
        path.chmod(0o755)  # the containers' non-root users read the mounted files
    made = subprocess.run(["./make-secrets.sh"], cwd=directory, capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    port = free_port()
    env = {**os.environ, "MCP_GATEWAY_PORT": str(port), "MCP_IMAGE_TAG": IMAGE_TAG, "POSTGRES_IMAGE": POSTGRES_STANDIN}
    stack = Stack(f"mcpcompose{uuid.uuid4().hex[:6]}", directory, port, env)
    try:
        yield stack
    finally:
        # podman-compose 1.0.3 reports containers it never started as errors; what is left decides.
        down = stack.compose("down", "-v")
        podman("network", "rm", f"{stack.project}_default")  # that version leaves its network behind
        left = podman("ps", "-a", "--filter", f"name={stack.project}", "--format", "{{.Names}}").stdout.split()
        volumes = podman("volume", "ls", "--filter", f"name={stack.project}", "--format", "{{.Name}}").stdout.split()
        assert not left and not volumes, (left, volumes, down.stdout[-2000:], down.stderr[-2000:])


def create_key(stack: Stack) -> str:
    """As the README says: `mcp-gateway keys create` inside the gateway container (admin token from its secret)."""
    cmd = ["mcp-gateway", "keys", "create", "--tenant", "demo", "--profile", "demo", "-o", "json"]
    done = podman("exec", stack.container("gateway"), *cmd)
    assert done.returncode == 0, done.stdout + done.stderr
    return str(json.loads(done.stdout)["key"])


async def call_through(stack: Stack, key: str) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        create_mcp_http_client(headers=headers) as http,
        Client(streamable_http_client(stack.url, http_client=http), mode="legacy") as client,
    ):
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"add_note", "list_items"} <= names, names  # the stdio server's and the OpenAPI service's
        saved = await client.call_tool("add_note", {"text": "compose works"})
        assert not saved.is_error and "saved note 1" in saved.content[0].text  # type: ignore[union-attr]
        session = await asyncio.to_thread(open_session, stack.url, headers)  # one more, seen on the wire

        restarted = podman("restart", stack.container("gateway"))
        assert restarted.returncode == 0, restarted.stderr
        await asyncio.to_thread(wait_ready, stack)

        # The same sessions (signed with the session keys from the secret) and key (in PostgreSQL) go on.
        assert (await asyncio.to_thread(session_ping, stack.url, session, headers)).status_code == 200
        items = await client.call_tool("list_items", {})
        assert not items.is_error and "BOLT-M6" in items.content[0].text, items  # type: ignore[union-attr]
        again = await client.call_tool("add_note", {"text": "after the restart"})
        assert "saved note 2" in again.content[0].text, again  # type: ignore[union-attr]


@pytest.mark.images
def test_compose_stack_serves_tools_and_survives_a_gateway_restart(stack: Stack) -> None:
    up = stack.compose("up", "-d")
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    wait_ready(stack)
    key = create_key(stack)
    asyncio.run(call_through(stack, key))
    # A fresh client with the same key, after the restart: the key lives in PostgreSQL.
    asyncio.run(call_again(stack, key))
    # The health checks compose.yaml declares pass (Docker runs them on its own; podman on request).
    for service in ("postgres", "gateway", "adapter-notes", "adapter-inventory"):
        check = podman("healthcheck", "run", stack.container(service))
        assert check.returncode == 0, f"{service}: {check.stdout}{check.stderr}\n{stack.logs(service)}"


async def call_again(stack: Stack, key: str) -> None:
    async with (
        create_mcp_http_client(headers={"Authorization": f"Bearer {key}"}) as http,
        Client(streamable_http_client(stack.url, http_client=http), mode="legacy") as client,
    ):
        result = await client.call_tool("get_item", {"sku": "NUT-M6"})
        assert not result.is_error and "Hex nut M6" in result.content[0].text  # type: ignore[union-attr]
