"""A profile's tool catalog with policy marks (admin API, `mcp-gateway tools`, console)."""

from __future__ import annotations

from typing import Any

from mcp_gateway.config import Profile
from mcp_gateway.policy import ProfilePolicy


def tool_catalog(backend: Any, profile: Profile, policy: ProfilePolicy) -> list[dict[str, Any]]:
    """[{name, upstream, upstreamName, description, allowed}] sorted by name, from the backend's merged catalog.

    `upstreamName` is the upstream's own name of a tool a tool override renamed, else null.
    """
    aggregator = getattr(backend, "aggregator", None)
    if aggregator is None:
        return []
    real_name = getattr(backend, "real_tool_name", lambda name: None)
    rows = []
    for name, (source, tool) in sorted(aggregator.catalog.tools.items()):
        real = real_name(name)
        allowed = policy.allows_tool(name) if real is None else policy.allows_renamed_tool(name, real)
        rows.append(
            {
                "name": name,
                "upstream": source,
                "upstreamName": real,
                "description": tool.description or "",
                "allowed": allowed,
            }
        )
    return rows
