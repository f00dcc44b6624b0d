"""`auth: {type: exchanged}` on an `http`, `openapi` or remote `mcp` source: call the upstream with
the token the gateway sent for this request.

The gateway exchanges each caller's OIDC token at the identity provider for a token made for
the Upstream's audience (RFC 8693, `tokenExchange` on the Upstream; mcp_gateway/token_exchange.py)
and sends it to the adapter as `Authorization: Bearer <token>`. The adapter keeps it for the
request it came with (a context variable, so it follows the request's tasks) and sends it to
the API instead of a static credential. The API checks the token's audience and learns who
calls. Without such a token (an adapter reached other than through an exchange Upstream) an
http/openapi tool answers an error naming the setting; no other credential is substituted. A
remote `mcp` source sends the token on each request made for a call (its HTTP client's auth hook
and the pass-through's header hook); requests made for no caller (connecting, listing the
catalog) go without one, so such a server must answer discovery anonymously.

The token is only relayed, never checked here: the API it is made for is the one that must
accept or refuse it, so an adapter reachable by others gives them nothing they did not bring.
"""

from __future__ import annotations

from collections.abc import Generator
from contextvars import ContextVar

import httpx2
from starlette.types import ASGIApp, Receive, Scope, Send

inbound_bearer: ContextVar[str | None] = ContextVar("mcp_adapter_inbound_bearer", default=None)


class InboundBearer:
    """Keeps the request's bearer token in `inbound_bearer` while the request is served."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                scheme, _, rest = value.decode("latin-1").partition(" ")
                token = rest.strip() or None if scheme.lower() == "bearer" else None
                break
        reset = inbound_bearer.set(token)
        try:
            await self.app(scope, receive, send)
        finally:
            inbound_bearer.reset(reset)


def exchanged_header() -> dict[str, str] | None:
    """`Authorization` for the current request's exchanged token; None when it brought none."""
    token = inbound_bearer.get()
    return {"Authorization": f"Bearer {token}"} if token else None


def exchanged_headers() -> list[tuple[str, str]]:
    """The pass-through relay's header hook of a remote `mcp` source with `auth: {type: exchanged}`."""
    token = inbound_bearer.get()
    return [("Authorization", f"Bearer {token}")] if token else []


class ExchangedBearer(httpx2.Auth):
    """The SDK client's auth of such a source: the current request's token on each upstream request."""

    def auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        token = inbound_bearer.get()
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        yield request
