"""What the front answers itself for a handshake-era session, and the loopback Origin rule.

- `DELETE` ends the session: its nonce joins the revocation list (store +
  every replica's in-memory set), so the token answers 404 from then on.
- A POSTed JSON-RPC *response* is the client answering a server-to-client
  request: it goes to the `Relay` (backchannel.py), which finds the replica
  and request waiting for it; the client gets 202 Accepted.
- `GET` opens the session's notification stream, and `resources/subscribe` /
  `resources/unsubscribe` change what it carries (streams.py): the session's
  subscriptions outlive any one request, so they are the gateway's, not the
  per-request MCP server's.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from starlette.responses import JSONResponse, Response

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
            return errors.error_response(
                503,
                errors.STORE_UNAVAILABLE,
                "the session could not be ended everywhere; retry the DELETE shortly",
                headers={"Retry-After": "5"},
            )
        gateway.streams.forget(info.nonce)
        return Response(status_code=200)
    profile = gateway.holder.config.profile(info.profile)
    if method == "GET" and profile is not None:
        return gateway.streams.serve(info, profile)
    if method == "POST" and message is not None and message.get("method") in SUBSCRIPTION_METHODS:
        return await _subscription(gateway, info, message)
    if method == "POST" and message is not None and "method" not in message:
        if not await gateway.relay.answer(info.nonce, message):
            log.info("dropped a client response that answers no gateway request")
        return Response(status_code=202)
    return None


SUBSCRIPTION_METHODS = ("resources/subscribe", "resources/unsubscribe")


async def _subscription(gateway: Gateway, info: SessionInfo, message: dict[str, Any]) -> Response:
    rid = message.get("id")
    uri = (message.get("params") or {}).get("uri")
    if not isinstance(uri, str) or not uri:
        return errors.error_response(200, INVALID_PARAMS, "params.uri (the resource URI) is required", rid)
    subscribe = message["method"] == "resources/subscribe"
    profile = gateway.holder.config.profile(info.profile)
    if subscribe and profile is not None:
        backend = await gateway.backends.get(profile)
        aggregator = getattr(backend, "aggregator", None)
        try:
            if aggregator is not None:
                aggregator.route_resource(uri)  # unknown or hidden by policy: refused like a read
        except MCPError as exc:
            return errors.error_response(200, exc.code, exc.error.message, rid)
    await gateway.streams.change(info, uri, subscribe)
    return JSONResponse({"jsonrpc": "2.0", "id": rid, "result": {}})


def _host(authority: str) -> str:
    return (urlsplit(f"//{authority}").hostname or "").lower()


def local_origin(origin: str, host_header: str | None) -> bool:
    """A loopback page talking to a gateway reached on loopback: not a DNS-rebinding attempt.

    A rebinding attack sends a foreign Host (the attacker's name), so requiring a
    loopback Host as well as a loopback Origin keeps that protection.
    """
    origin_host = (urlsplit(origin).hostname or "").lower()
    return origin_host in LOOPBACK_HOSTS and host_header is not None and _host(host_header) in LOOPBACK_HOSTS
