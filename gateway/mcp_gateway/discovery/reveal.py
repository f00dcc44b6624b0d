"""`discovery.reveal`: tools found by `search_tools` join a handshake session's `tools/list`.

The session then gets `notifications/tools/list_changed` on its GET stream, so a client that
re-lists sees the found tools as ordinary tools. Like resource subscriptions (streams.py), the
revealed names are published to every replica through the store (the search may land on
another replica than the one holding the session's stream) and kept in replica memory, bounded:
a replica that restarts forgets them, and the meta-tools keep working without them.
2026-07-28 (stateless) requests have no session to reveal into; their `tools/list` is unchanged.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from mcp_gateway.sessions import SessionInfo

if TYPE_CHECKING:
    from mcp_gateway.runtime import Gateway

log = logging.getLogger("mcp_gateway.discovery")

MAX_SESSIONS = 10_000
MAX_REVEALED = 64  # per session: revealing is for a working set, not the whole catalog
TOOLS_CHANGED = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}


class Revealed:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._by_session: OrderedDict[str, dict[str, None]] = OrderedDict()  # nonce -> names, in reveal order

    def of(self, session: SessionInfo) -> list[str]:
        return list(self._by_session.get(session.nonce, ()))

    async def reveal(self, session: SessionInfo, names: list[str]) -> None:
        known = self._by_session.get(session.nonce, {})
        new = [n for n in names if n not in known]
        if not new:
            return
        payload = {"kind": "reveal", "session": session.nonce, "profile": session.profile, "tools": new}
        try:
            await self.gateway.store.publish(payload)  # every replica, this one included
        except Exception as exc:
            log.warning("tools revealed on this replica only, the store is unreachable: %s", type(exc).__name__)
            self.on_published(payload)

    def on_published(self, payload: dict[str, Any]) -> None:
        session, profile, tools = payload.get("session"), payload.get("profile"), payload.get("tools")
        if not isinstance(session, str) or not isinstance(profile, str) or not isinstance(tools, list):
            return
        names = self._by_session.setdefault(session, {})
        self._by_session.move_to_end(session)
        before = len(names)
        for name in tools:
            if isinstance(name, str) and len(names) < MAX_REVEALED:
                names.setdefault(name, None)
        while len(self._by_session) > MAX_SESSIONS:
            self._by_session.popitem(last=False)
        if len(names) > before:
            self.gateway.streams.notify_session(profile, session, TOOLS_CHANGED)
