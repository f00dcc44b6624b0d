"""What the front answers itself for a handshake-era session, and the loopback Origin rule.

- `DELETE` ends the session: its nonce joins the revocation list (store +
  every replica's in-memory set), so the token answers 404 from then on.
- A POSTed JSON-RPC *response* is the client answering a server-to-client
  request: it goes to the `Relay` (backchannel.py), which finds the replica
  and request waiting for it; the client gets 202 Accepted.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.responses import Response

from mcp_gateway import errors
from mcp_gateway.sessions import SessionInfo

if TYPE_CHECKING:
    from mcp_gateway.runtime import Gateway

log = logging.getLogger("mcp_gateway.sessions")

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1"}


async def session_request(
    gateway: Gateway, info: SessionInfo, method: str, message: dict[str, Any] | None
) -> Response | None:
    """The response when the front handles this request itself, else None (the backend serves it)."""
    if method == "DELETE":
        try:
            await gateway.revoked.revoke(info)
        except Exception as exc:  # the store is down: ended here, but other replicas cannot know yet
            log.warning("session ended on this replica only, the store is unreachable: %s", type(exc).__name__)
            return errors.jsonrpc_error(
                503,
                errors.STORE_UNAVAILABLE,
                "the session could not be ended everywhere; retry the DELETE shortly",
                headers={"Retry-After": "5"},
            )
        return Response(status_code=200)
    if method == "POST" and message is not None and "method" not in message:
        if not await gateway.relay.answer(info.nonce, message):
            log.info("dropped a client response that answers no gateway request")
        return Response(status_code=202)
    return None


def _host(authority: str) -> str:
    return (urlsplit(f"//{authority}").hostname or "").lower()


def local_origin(origin: str, host_header: str | None) -> bool:
    """A loopback page talking to a gateway reached on loopback: not a DNS-rebinding attempt.

    A rebinding attack sends a foreign Host (the attacker's name), so requiring a
    loopback Host as well as a loopback Origin keeps that protection.
    """
    origin_host = (urlsplit(origin).hostname or "").lower()
    return origin_host in LOOPBACK_HOSTS and host_header is not None and _host(host_header) in LOOPBACK_HOSTS
