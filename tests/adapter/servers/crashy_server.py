"""A tiny stdio MCP server for crash/restart tests: `pid` answers the process id, `crash` exits."""

from __future__ import annotations

import os
import sys

from mcp.server.mcpserver import MCPServer

mcp = MCPServer("crashy")


@mcp.tool(description="The server's process id")
def pid() -> str:
    print("crashy serving pid", file=sys.stderr, flush=True)
    return str(os.getpid())


@mcp.tool(description="Exits the process at once, as a crash would")
def crash() -> str:
    os._exit(3)


if __name__ == "__main__":
    mcp.run("stdio")
