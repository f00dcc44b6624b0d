"""The upstream under test: an SDK MCP server with one trivial `echo` tool,
served over streamable HTTP in both protocol eras. `PORT --json` answers POSTs as
JSON instead of SSE; `stdio` serves one client over stdin/stdout (an adapter's child).

Over HTTP, `GET /connections` tells how many TCP connections it has accepted, so the
bench can count the connections its client (an adapter) opened per 1,000 calls."""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

server = MCPServer("bench-echo")
ACCEPTED = [0]


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


class CountingProtocol(HttpToolsProtocol):
    def connection_made(self, transport: Any) -> None:
        ACCEPTED[0] += 1
        super().connection_made(transport)


async def connections(request: Request) -> PlainTextResponse:
    return PlainTextResponse(str(ACCEPTED[0]))


if __name__ == "__main__" and sys.argv[1:] == ["stdio"]:
    server.run("stdio")
elif __name__ == "__main__":
    app = server.streamable_http_app(json_response="--json" in sys.argv[2:])
    app.add_route("/connections", connections, methods=["GET"])
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
        http=CountingProtocol,
    )
