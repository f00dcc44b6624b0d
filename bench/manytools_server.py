"""Many upstreams in one process: `python -m bench.manytools_server PORT SERVERS TOOLS`.

Serves SERVERS independent MCP servers at `/u{i}/mcp`, each with TOOLS tools
(`u{i}_tool_{j}`, a small input schema and a one-line description, like real
tool catalogs), for the aggregation benchmark. One process keeps ten upstreams
cheap on a two-core machine; the gateway still sees ten separate endpoints.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Callable

import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.routing import Mount


def _tool(label: str) -> Callable[[str, int], str]:
    def tool(query: str, limit: int = 10) -> str:
        return f"{label}: {query} ({limit})"

    return tool


def build(servers: int, tools: int) -> Starlette:
    mcp_servers = []
    mounts = []
    for i in range(servers):
        server = MCPServer(f"bench-many-{i}")
        for j in range(tools):
            name = f"u{i}_tool_{j}"
            server.add_tool(_tool(name), name=name, description=f"Look up records of kind {j} in catalog {i}.")
        mounts.append(Mount(f"/u{i}", app=server.streamable_http_app()))
        mcp_servers.append(server)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for server in mcp_servers:
                await stack.enter_async_context(server.session_manager.run())
            yield

    return Starlette(routes=mounts, lifespan=lifespan)


if __name__ == "__main__":
    port, servers, tools = (int(a) for a in sys.argv[1:4])
    uvicorn.run(build(servers, tools), host="127.0.0.1", port=port, log_level="warning", access_log=False)
