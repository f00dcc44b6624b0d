"""Start the adapter as a real process and talk to it with a real MCP client."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.support.processes import ManagedProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
FEATURE_SERVER = str(ROOT / "tests" / "servers" / "feature_server.py")
CRASHY_SERVER = str(ROOT / "tests" / "adapter" / "servers" / "crashy_server.py")
ERAS = ["legacy", "2026-07-28"]


def feature_stdio(name: str = "feat", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "stdio", "command": PYTHON, "args": [FEATURE_SERVER, "--transport", "stdio"], **extra}


class Adapter:
    def __init__(self, process: ManagedProcess, url: str, config_path: Path) -> None:
        self.process = process
        self.url = url
        self.config_path = config_path

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp"


def start_adapter(
    spawn: Callable[..., ManagedProcess],
    tmp_path: Path,
    sources: list[dict[str, Any]],
    *,
    env: dict[str, str] | None = None,
    server: dict[str, Any] | None = None,
) -> Adapter:
    port = free_port()
    config_path = tmp_path / "adapter.yaml"
    config: dict[str, Any] = {"sources": sources}
    if server:
        config["server"] = server
    config_path.write_text(yaml.safe_dump(config))
    process = spawn(
        [PYTHON, "-m", "mcp_adapter.cli", "--config", str(config_path), "--port", str(port)],
        name="adapter",
        env=env,
        ready_url=f"http://127.0.0.1:{port}/readyz",
        timeout=60,
    )
    return Adapter(process, f"http://127.0.0.1:{port}", config_path)


@asynccontextmanager
async def connect(url: str, mode: str, *, caller: str | None = None, **kwargs: Any) -> AsyncIterator[Client]:
    headers = {"X-MCP-Caller": caller} if caller else None
    http = create_mcp_http_client(headers=headers)
    async with http, Client(streamable_http_client(url, http_client=http), mode=mode, **kwargs) as client:
        yield client
