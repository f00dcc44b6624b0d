"""A profile's tool catalog with policy marks (admin API, `mcp-gateway tools`, console)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcp_gateway.auth import Principal
from mcp_gateway.auth.oidc import scopes_of
from mcp_gateway.config import Profile
from mcp_gateway.policy import ProfilePolicy


def tool_catalog(
    backend: Any, profile: Profile, policy: ProfilePolicy, caller: Principal | None = None
) -> list[dict[str, Any]]:
    """[{name, upstream, upstreamName, description, allowed}] sorted by name, from the backend's merged catalog.

    `upstreamName` is the upstream's own name of a tool a tool override renamed, else null. With
    `caller`, `allowed` is what that caller's tools/list shows (globs, then the CEL rules without
    arguments) and `rule` names the rule that hides a tool (null: the globs, or no allow rule).
    """
    aggregator = getattr(backend, "aggregator", None)
    if aggregator is None:
        return []
    real_name = getattr(backend, "real_tool_name", lambda name: None)
    rows = []
    for name, (source, tool) in sorted(aggregator.catalog.tools.items()):
        real = real_name(name)
        allowed = policy.allows_tool(name) if real is None else policy.allows_renamed_tool(name, real)
        row = {"name": name, "upstream": source, "upstreamName": real, "description": tool.description or ""}
        row["allowed"] = allowed
        if caller is not None:
            verdict = policy.rules.decide("tool", name, source, caller) if allowed else None
            row["allowed"] = allowed and verdict is not None and verdict.allowed
            row["hiddenBy"] = "globs" if not allowed else None if verdict is None or verdict.allowed else "rules"
            row["rule"] = verdict.rule if verdict is not None and not verdict.allowed else None
        rows.append(row)
    return rows


def principal_from_claims(profile: Profile, claims: Mapping[str, Any]) -> Principal:
    """The caller a set of claims describes, as the gateway would see it (for previews)."""
    sub = claims.get("sub")
    if isinstance(sub, str) and sub:
        return Principal("oidc", profile.tenant, f"sub:{sub}", tuple(scopes_of(dict(claims))), claims=dict(claims))
    key_id = claims.get("keyId")
    if isinstance(key_id, str) and key_id:  # an API key's attributes: keyId, keyName, keyLabels
        return Principal("apiKey", profile.tenant, f"key:{key_id}", claims=dict(claims))
    return Principal("none", profile.tenant, "anonymous", claims=dict(claims))
