"""What a profile exposes, read from its running backend.

The gateway keeps one backend per profile (an adapter `Aggregator` over the
profile's upstreams). Its merged catalog lists *every* tool, before policy,
so the console can mark each one allowed or hidden with the profile's own
policy object, and its sources report whether each upstream is connected.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from mcp_gateway.catalog import tool_catalog
from mcp_gateway.config import Profile
from mcp_gateway.policy import ProfilePolicy
from mcp_gateway.runtime import Gateway

log = logging.getLogger("mcp_gateway.console")

BACKEND_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class ToolView:
    name: str
    upstream: str
    description: str
    allowed: bool
    upstream_name: str | None = None  # the upstream's own name of a renamed tool (overrides.py)


@dataclass(frozen=True)
class UpstreamHealth:
    name: str
    url: str
    up: bool
    detail: str


@dataclass(frozen=True)
class ProfileState:
    profile: Profile
    upstreams: list[UpstreamHealth]
    tools: list[ToolView]
    error: str | None = None


async def backend_of(gateway: Gateway, profile: Profile) -> Any:
    backend = await asyncio.wait_for(gateway.backends.get(profile), BACKEND_WAIT_SECONDS)
    if getattr(backend, "aggregator", None) is None:
        raise RuntimeError("this backend does not expose its catalog")
    return backend


def _health(profile: Profile, aggregator: Any) -> list[UpstreamHealth]:
    out = []
    monitor = getattr(aggregator, "monitor", None)  # probes and circuit breakers (health.py)
    for upstream in profile.upstreams:
        source = aggregator.sources.get(upstream.name)
        status: dict[str, Any] = source.status() if source is not None else {"ready": False}
        up = bool(status.get("ready"))
        detail = "connected" if up else str(status.get("lastError") or "not connected")
        probed = monitor.upstreams.get(upstream.name) if monitor is not None else None
        if probed is not None:
            circuit = probed.breaker.state.value.replace("_", "-")
            detail += f"; health {probed.status.value}, circuit {circuit}"
            if probed.breaker.state.value == "open":
                up = False
                detail += f" ({probed.breaker.reason})"
        out.append(UpstreamHealth(upstream.name, upstream.url, up, detail))
    return out


def _tools(profile: Profile, backend: Any, policy: ProfilePolicy) -> list[ToolView]:
    return [
        ToolView(row["name"], row["upstream"], row["description"], row["allowed"], row["upstreamName"])
        for row in tool_catalog(backend, profile, policy)
    ]


async def profile_state(gateway: Gateway, profile: Profile) -> ProfileState:
    """Health and tools of one profile; a backend that cannot start shows every upstream down."""
    try:
        backend = await backend_of(gateway, profile)
    except Exception as exc:
        log.warning("console: profile %s backend unavailable: %s", profile.id, exc)
        down = [UpstreamHealth(u.name, u.url, False, "backend not running") for u in profile.upstreams]
        return ProfileState(profile, down, [], error="the profile's backend is not running; see the gateway logs")
    tools = _tools(profile, backend, gateway.policies.of(profile))
    return ProfileState(profile, _health(profile, backend.aggregator), tools)


async def profile_states(gateway: Gateway, profiles: list[Profile]) -> list[ProfileState]:
    return list(await asyncio.gather(*(profile_state(gateway, p) for p in profiles)))
