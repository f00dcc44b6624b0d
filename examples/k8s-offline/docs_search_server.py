"""The remote MCP server `docs-search` of examples/k8s/upstream-remote-mcp.yaml: streamable HTTP
on port 8000 (MCP SDK), answering only requests with the bearer token of the Secret
remote-mcp-credentials (env EXPECTED_TOKEN), which the gateway adds to every request."""

from __future__ import annotations

import hmac
import os
import socket
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer

DOCS = {
    "install": "Install the chart with helm install mcp-gateway charts/mcp-gateway.",
    "keys": "Mint an API key with POST /admin/v1/tenants/<tenant>/keys.",
    "profiles": "A Profile is one MCP endpoint aggregating upstreams.",
}

mcp = MCPServer("docs-search")


@mcp.tool(description="Search the documentation; returns the matching pages")
def search(query: str) -> str:
    found = [f"{name}: {text}" for name, text in DOCS.items() if query.lower() in (name + " " + text).lower()]
    return "\n".join(found or ["no match"]) + f"\n(served by {socket.gethostname()})"


class RequireToken:
    """401 for any HTTP request without `Authorization: Bearer <token>`."""

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.expected = app, f"Bearer {token}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                await send(
                    {"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"text/plain")]}
                )
                await send({"type": "http.response.body", "body": b"missing or wrong bearer token"})
                return
        await self.app(scope, receive, send)


if __name__ == "__main__":
    app = RequireToken(mcp.streamable_http_app(host="0.0.0.0"), os.environ["EXPECTED_TOKEN"])
    uvicorn.run(app, host="0.0.0.0", port=8000, log_level="warning")
