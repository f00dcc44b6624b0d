"""Per-connection state the feature server keeps: which handshake-era sessions
exist (to broadcast list_changed / resource updates), their log levels and their
resource subscriptions."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.session import ServerSession

log = logging.getLogger("feature_server")

LOG_LEVELS = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]
STDIO_KEY = "stdio"


def request_headers(ctx: ServerRequestContext[Any, Any]) -> Mapping[str, str]:
    headers = getattr(ctx.request, "headers", None)
    return headers if headers is not None else {}


def session_key(ctx: ServerRequestContext[Any, Any]) -> str | None:
    """The handshake-era session a request belongs to; None for stateless 2026-07-28 requests."""
    headers = request_headers(ctx)
    if ctx.request is None:
        return STDIO_KEY
    return headers.get("mcp-session-id")


@dataclass
class SessionInfo:
    session: ServerSession
    log_level: str = "debug"
    subscriptions: set[str] = field(default_factory=set)


class Registry:
    """Known sessions, updated by a middleware on every inbound message."""

    def __init__(self) -> None:
        self.sessions: dict[str, SessionInfo] = {}

    async def middleware(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        key = session_key(ctx)
        if key is not None:
            info = self.sessions.get(key)
            if info is None:
                self.sessions[key] = SessionInfo(ctx.session)
            else:
                info.session = ctx.session
        return await call_next(ctx)

    def info(self, ctx: ServerRequestContext[Any, Any]) -> SessionInfo | None:
        key = session_key(ctx)
        return None if key is None else self.sessions.get(key)

    def wants_log(self, ctx: ServerRequestContext[Any, Any], level: str) -> bool:
        info = self.info(ctx)
        threshold = info.log_level if info is not None else "debug"
        return LOG_LEVELS.index(level) >= LOG_LEVELS.index(threshold)

    async def broadcast(self, method: str, uri: str | None = None) -> int:
        """Send a notification to every live handshake-era session; returns how many got it."""
        sent = 0
        for key, info in list(self.sessions.items()):
            if uri is not None and uri not in info.subscriptions:
                continue
            try:
                if method == "tools":
                    await info.session.send_tool_list_changed()
                elif method == "prompts":
                    await info.session.send_prompt_list_changed()
                elif method == "resources":
                    await info.session.send_resource_list_changed()
                elif uri is not None:
                    await info.session.send_resource_updated(uri)
                sent += 1
            except Exception as exc:  # a closed session: forget it
                log.info("dropping session %s: %r", key, exc)
                self.sessions.pop(key, None)
        return sent


REGISTRY = Registry()
