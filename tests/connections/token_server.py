"""A third-party MCP server that needs the user's own token from the third-party provider.

    python tests/connections/token_server.py --port N --issuer ISSUER

Tool `whoami`, resource `crm://me` and prompt `me` verify the bearer token (signature by the
issuer's JWKS, issuer, expiry) and answer with the account's `preferred_username`; without a
valid token they answer an error.
Listing needs no token (the gateway lists the catalog without a caller). GET /seen returns
every Authorization header received, so a test can check which tokens reached it.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextvars import ContextVar
from pathlib import Path

import jwt
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from starlette.types import Receive, Scope, Send

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

# The request's Authorization header, for the resource (the SDK gives static resources no Context).
request_auth: ContextVar[str] = ContextVar("request_auth", default="")


def build(issuer: str) -> tuple[MCPServer, list[str]]:
    seen: list[str] = []
    keys = jwt.PyJWKClient(f"{issuer}/protocol/openid-connect/certs", cache_keys=True)
    mcp = MCPServer("third-party")

    def account(auth: str) -> str:
        if not auth.lower().startswith("bearer "):
            raise ValueError("unauthorized: no bearer token")
        token = auth[7:]
        try:
            key = keys.get_signing_key_from_jwt(token)
            claims = jwt.decode(token, key.key, algorithms=["RS256"], issuer=issuer, options={"verify_aud": False})
        except jwt.PyJWTError as exc:
            raise ValueError(f"unauthorized: {type(exc).__name__}") from None
        return f"{claims.get('preferred_username')} via {claims.get('azp')}"

    @mcp.tool()
    def whoami(ctx: Context) -> str:
        """The third-party account whose token came with the call."""
        return account((ctx.headers or {}).get("authorization", ""))

    @mcp.resource("crm://me", name="me", mime_type="text/plain")
    def me() -> str:
        return account(request_auth.get())

    @mcp.prompt(description="Greets the account whose token came with the request")
    def greet_me() -> str:
        return f"Hello {account(request_auth.get())}"

    return mcp, seen


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--issuer", required=True)
    args = parser.parse_args()
    mcp, seen = build(args.issuer)
    inner = mcp.streamable_http_app(stateless_http=True, json_response=True)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["path"] == "/seen":
                body = json.dumps(seen).encode()
                await send(
                    {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
                )
                await send({"type": "http.response.body", "body": body})
                return
            auth = [v.decode() for k, v in scope["headers"] if k == b"authorization"]
            seen.extend(auth)
            request_auth.set(auth[0] if auth else "")
        await inner(scope, receive, send)

    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", lifespan="on")


if __name__ == "__main__":
    main()
