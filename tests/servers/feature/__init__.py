"""The feature-complete MCP test server: every MCP feature, in both protocol eras.

Built with the official SDK (`MCPServer`). Run it with `tests/servers/feature_server.py`.
"""

from __future__ import annotations

import functools
from typing import Literal

from mcp.server.caching import CacheHint
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.mcpserver import MCPServer

from . import catalog, conformance_tools, gateway_tools, input_required
from .state import REGISTRY

SERVER_NAME = "feature-server"
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
CACHE_HINT = CacheHint(ttl_ms=0, scope="private")
CACHED_METHODS = ("tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read")


def build_server(log_level: LogLevel = "WARNING") -> MCPServer:
    mcp: MCPServer = MCPServer(
        SERVER_NAME,
        log_level=log_level,
        version="1.0.0",
        instructions="Test server exercising every MCP feature.",
        cache_hints={method: CACHE_HINT for method in CACHED_METHODS},  # type: ignore[misc]
        middleware=[REGISTRY.middleware],
    )
    conformance_tools.register(mcp)
    input_required.register(mcp)
    gateway_tools.register(mcp)
    catalog.register_resources(mcp)
    catalog.register_prompts(mcp)
    catalog.register_handlers(mcp)
    # Handshake-era clients learn listChanged support from initialize; the SDK
    # defaults those flags to off, and this server does send the notifications.
    lowlevel = mcp._lowlevel_server
    options = NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True)
    lowlevel.create_initialization_options = functools.partial(  # type: ignore[method-assign]
        lowlevel.create_initialization_options, options
    )
    return mcp
