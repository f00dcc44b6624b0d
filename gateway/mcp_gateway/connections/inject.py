"""The data path: a caller's own access token on their calls to an upstream with `connection:`.

`prepare()` runs in the tool-call interceptor, and in the front for resources/read and prompts/get
of such an upstream (`prepare_request`). With a connection it puts the caller's token in
a context variable, which the upstream request's header hook (`with_bearer`) reads: the token
travels with that one call only, never on another caller's. Without one the caller gets a link:
- handshake-era sessions: the -32042 URL-elicitation-required error (2025-11-25);
- 2026-07-28 requests: an `input_required` result whose input request is the same URL-mode
  elicitation; the client retries the call after the user connected.
The caller's own token to the gateway is never forwarded (the header hook replaces any
Authorization header with the connection's token).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING

import mcp_types as types
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import URL_ELICITATION_REQUIRED

from mcp_gateway import errors
from mcp_gateway.connections import oauth
from mcp_gateway.connections.service import ConnectionsDisabled, NotConnected, label
from mcp_gateway.connections.settings import OAuthConnection
from mcp_gateway.connections.store import ConnectionKey
from mcp_gateway.context import CallContext
from mcp_gateway.rules import Kind
from mcp_gateway.token_exchange import target_of

if TYPE_CHECKING:
    from mcp_gateway.runtime import Gateway

log = logging.getLogger("mcp_gateway.connections")

# (upstream name, access token) of the call being made: the hook of another upstream ignores it.
upstream_bearer: ContextVar[tuple[str, str] | None] = ContextVar("mcp_gateway_upstream_bearer", default=None)
INPUT_KEY = "connect"


def with_bearer(inner: Callable[[], list[tuple[str, str]]], upstream: str) -> Callable[[], list[tuple[str, str]]]:
    """`inner`'s headers plus the current call's token for `upstream` (if it has one)."""

    def headers() -> list[tuple[str, str]]:
        found = inner()
        current = upstream_bearer.get()
        if current is not None and current[0] == upstream:
            found.append(("authorization", f"Bearer {current[1]}"))
        return found

    return headers


def connect_base(gateway: Gateway) -> str:
    """Connect links and the OAuth redirect URI need the gateway's stable public URL."""
    base = gateway.holder.config.gateway.public_url or gateway.env.get("MCP_GATEWAY_PUBLIC_URL")
    if not base:
        raise ConnectionsDisabled("connections need the gateway's public URL: set gateway.publicUrl")
    return base.rstrip("/")


async def prepare(
    gateway: Gateway, ctx: CallContext, upstream: str, settings: OAuthConnection, *, rounds: bool = True
) -> types.InputRequiredResult | types.CallToolResult | None:
    """Set the caller's token for this call; or the round asking them to connect (raised or returned).

    `rounds=False` (resources/read, prompts/get, which the front prepares): a caller without a
    connection always gets the -32042 error naming the link, whatever the protocol era.
    """
    principal = ctx.principal
    if principal.kind != "oidc":
        raise MCPError(
            code=errors.FORBIDDEN,
            message=f"upstream {upstream!r} uses each user's own connection; sign in with the profile's "
            "identity provider (OAuth) to use it, API keys and anonymous callers cannot connect",
        )
    key = ConnectionKey(ctx.profile.tenant, principal.caller, ctx.profile.id, upstream)
    connections = gateway.connections
    try:
        upstream_bearer.set((upstream, await connections.access_token(key, settings)))
        return None
    except NotConnected as reason:
        if not rounds:  # raises the -32042 error
            _ask_to_connect(gateway, ctx, key, settings, str(reason), rounds=False)
        answer = _answer(ctx.message)
        if answer not in (None, "accept"):  # the user declined or dismissed the link of the previous round
            text = f"you did not connect your {label(settings, upstream)} account ({answer}); this tool needs it"
            return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)
        return _ask_to_connect(gateway, ctx, key, settings, str(reason))
    except oauth.ProviderUnavailable as exc:
        log.warning("connection token for %s unavailable: %s", upstream, exc)
        raise MCPError(
            code=errors.UPSTREAM_UNAVAILABLE,
            message=f"the authorization server of {label(settings, upstream)} is unreachable; try again later "
            "(your connection is kept)",
        ) from None
    except ConnectionsDisabled as exc:
        log.error("upstream %s: %s", upstream, exc)
        raise MCPError(code=errors.INTERNAL_ERROR, message="connections are not configured on this gateway") from None


def _answer(message: dict[str, object] | None) -> str | None:
    """The action of the client's answer to our connect request, when this call retries one (2026-07-28)."""
    params = message.get("params") if message else None
    responses = params.get("inputResponses") if isinstance(params, dict) else None
    answer = responses.get(INPUT_KEY) if isinstance(responses, dict) else None
    action = answer.get("action") if isinstance(answer, dict) else None
    return action if isinstance(action, str) else None


def _ask_to_connect(
    gateway: Gateway, ctx: CallContext, key: ConnectionKey, settings: OAuthConnection, reason: str, rounds: bool = True
) -> types.InputRequiredResult:
    try:
        base = connect_base(gateway)
        link = gateway.connections.link(key, gateway.holder.config.gateway.connections.link_seconds)
    except ConnectionsDisabled as exc:
        log.error("upstream %s: %s", key.upstream, exc)
        raise MCPError(code=errors.INTERNAL_ERROR, message="connections are not configured on this gateway") from None
    url = f"{base}/console/connect?link={link}"
    gateway.connections.counted("link", key)
    again = "call the tool again" if rounds else "try again"
    message = f"{reason}. Open this link to connect your {label(settings, key.upstream)} account, then {again}."
    if ctx.session is not None or not rounds:  # the 2025-11-25 error (older clients still read the message)
        elicitation = types.ElicitRequestURLParams(message=message, url=url, elicitation_id=secrets.token_urlsafe(12))
        data = types.ElicitationRequiredErrorData(elicitations=[elicitation])
        raise MCPError(
            code=URL_ELICITATION_REQUIRED,
            message=f"{message} {url}",
            data=data.model_dump(by_alias=True, exclude_none=True, mode="json"),
        )
    request = types.ElicitRequest(params=types.ElicitRequestURLParams(message=message, url=url))
    return types.InputRequiredResult(input_requests={INPUT_KEY: request})


async def prepare_request(gateway: Gateway, ctx: CallContext, upstream_of: Callable[[Kind, str], str] | None) -> None:
    """resources/read and prompts/get of an upstream with `connection:` carry the caller's token too.

    Raises MCPError (the front answers it): no connection (-32042 with the link), a caller who
    cannot connect, an unreachable provider. Tool calls are left to the interceptor (`prepare`).
    """
    target = target_of(ctx.message)
    if target is None or target[0] == "tool" or upstream_of is None:
        return
    name = upstream_of(*target)
    settings = next((u.connection for u in ctx.profile.upstreams if u.name == name), None)
    if settings is not None:
        await prepare(gateway, ctx, name, settings, rounds=False)
