"""`auth: {type: exchanged}` on an `http` or `openapi` source: call the API with the token the
gateway sent for this request.

The gateway exchanges each caller's OIDC token at the identity provider for a token made for
the Upstream's audience (RFC 8693, `tokenExchange` on the Upstream; mcp_gateway/token_exchange.py)
and sends it to the adapter as `Authorization: Bearer <token>`. The adapter keeps it for the
request it came with (a context variable, so it follows the request's tasks) and sends it to
the API instead of a static credential. The API checks the token's audience and learns who
calls. Without such a token (an adapter reached other than through an exchange Upstream) the
tool answers an error naming the setting; no other credential is substituted.

The token is only relayed, never checked here: the API it is made for is the one that must
accept or refuse it, so an adapter reachable by others gives them nothing they did not bring.
"""

from __future__ import annotations

from contextvars import ContextVar

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
