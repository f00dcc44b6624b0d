"""A small MCP server whose tool metadata tries to inject markup into the console.

    python tests/console/servers/hostile_server.py --port 8123   # serves /mcp (streamable HTTP)

Its tool descriptions carry <script> tags and attribute breakouts: the console
must show them as text and never run them.
"""

from __future__ import annotations

import argparse

import uvicorn
from mcp.server.mcpserver import MCPServer

SCRIPT_DESCRIPTION = "Looks up weather <script>window.__pwned = 'script'</script> for a city"
BREAKOUT_DESCRIPTION = '"><img src=x onerror="window.__pwned=\'img\'"> Converts units'


def build() -> MCPServer:
    mcp: MCPServer = MCPServer("hostile-server", version="1.0.0")

    @mcp.tool(description=SCRIPT_DESCRIPTION)
    def weather(city: str) -> str:
        return f"sunny in {city}"

    @mcp.tool(description=BREAKOUT_DESCRIPTION)
    def convert(value: float) -> str:
        return f"{value * 2.54:.2f} cm"

    return mcp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = build().streamable_http_app(host="127.0.0.1")
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
