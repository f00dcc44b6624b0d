"""Per-request context the data path hands to hooks deep inside the MCP server."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from mcp_gateway.auth import Principal
from mcp_gateway.config import Profile, RoutingConfig
from mcp_gateway.sessions import SessionInfo


@dataclass(frozen=True)
class CallContext:
    config: RoutingConfig
    profile: Profile
    principal: Principal
    # The handshake-era session (None for 2026-07-28 requests and `initialize`).
    session: SessionInfo | None = None
    # The JSON-RPC message POSTed (None for GET/DELETE), as the front validated it.
    message: dict[str, Any] | None = None


current_call: ContextVar[CallContext | None] = ContextVar("mcp_gateway_call", default=None)
