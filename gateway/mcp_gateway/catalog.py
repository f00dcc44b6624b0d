"""A profile's tool catalog with policy marks (admin API, `mcp-gateway tools`, console)."""

from __future__ import annotations

from typing import Any

from mcp_gateway.config import Profile
from mcp_gateway.policy import ProfilePolicy


def tool_catalog(backend: Any, profile: Profile, policy: ProfilePolicy) -> list[dict[str, Any]]:
    """[{name, upstream, description, allowed}] sorted by name, from the backend's merged catalog."""
    aggregator = getattr(backend, "aggregator", None)
    if aggregator is None:
        return []
    return [
        {
            "name": name,
            "upstream": source,
            "description": tool.description or "",
            "allowed": policy.allows_tool(name),
        }
        for name, (source, tool) in sorted(aggregator.catalog.tools.items())
    ]
