"""The upstream under test: an SDK MCP server with one trivial `echo` tool,
served over streamable HTTP in both protocol eras. `PORT --json` answers POSTs as
JSON instead of SSE; `stdio` serves one client over stdin/stdout (an adapter's child)."""

from __future__ import annotations

import sys

import uvicorn
from mcp.server.mcpserver import MCPServer

server = MCPServer("bench-echo")


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


if __name__ == "__main__" and sys.argv[1:] == ["stdio"]:
    server.run("stdio")
elif __name__ == "__main__":
    uvicorn.run(
        server.streamable_http_app(json_response="--json" in sys.argv[2:]),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
    )
