"""A small MCP server whose list results carry the cache hints given on its command line.

python tests/gateway/servers/hinted_server.py --port P --ttl-ms 5000 --scope public --tool alpha
"""

from __future__ import annotations

import argparse

import uvicorn
from mcp.server.caching import CacheHint
from mcp.server.mcpserver import MCPServer

LISTS = ("tools/list", "prompts/list", "resources/list", "resources/templates/list")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ttl-ms", type=int, required=True)
    parser.add_argument("--scope", choices=["public", "private"], required=True)
    parser.add_argument("--tool", default="alpha")
    args = parser.parse_args()
    hint = CacheHint(ttl_ms=args.ttl_ms, scope=args.scope)
    mcp = MCPServer("hinted", cache_hints=dict.fromkeys(LISTS, hint))  # type: ignore[arg-type]

    def tool(text: str = "") -> str:
        return f"{args.tool}: {text}"

    mcp.add_tool(tool, name=args.tool, description="Echoes its text, prefixed with the tool name")
    uvicorn.run(mcp.streamable_http_app(host="127.0.0.1"), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
