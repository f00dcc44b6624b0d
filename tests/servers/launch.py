"""How to start the feature server, for tests in any area.

process = spawn(http_command(port), name="feature", ready_url=http_url(port))
async with Client(http_url(port)) as client: ...
async with Client(stdio_parameters()) as client: ...
"""

from __future__ import annotations

import sys
from pathlib import Path

from mcp.client.stdio import StdioServerParameters

from tests.support.conformance import CACHE, ensure_installed, node_bin

FEATURE_SERVER = Path(__file__).resolve().parent / "feature_server.py"


def http_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/mcp"


def http_command(port: int) -> list[str]:
    return [sys.executable, str(FEATURE_SERVER), "--transport", "http", "--port", str(port)]


def stdio_command() -> list[str]:
    return [sys.executable, str(FEATURE_SERVER), "--transport", "stdio"]


def stdio_parameters(env: dict[str, str] | None = None) -> StdioServerParameters:
    command, *args = stdio_command()
    return StdioServerParameters(command=command, args=args, env=env)


def everything_command(transport: str = "stdio") -> list[str]:
    """The reference TypeScript "everything" server (installed by scripts/setup-node.sh).

    For transport "streamableHttp" it listens on the PORT environment variable and serves /mcp.
    """
    ensure_installed()
    package = CACHE / "npm" / "server-everything" / "node_modules" / "@modelcontextprotocol" / "server-everything"
    return [str(node_bin() / "node"), str(package / "dist" / "index.js"), transport]
