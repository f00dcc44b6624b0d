"""An API that accepts only tokens made for it: the upstream of the token-exchange tests.

A request that needs a token must carry `Authorization: Bearer <JWT>` signed by the issuer's
keys (its JWKS), from that issuer, for this API's audience; anything else is a 401 naming the
reason. Two faces:

- HTTP: `GET /orders` answers who called (the token's sub, username, azp, aud, scope).
- MCP at `/mcp` (an SDK server, both eras): discovery is anonymous (initialize, tools/list...),
  `tools/call` needs the token; `GET /calls` lists the verified claims of every call accepted.

`GET /seen` lists every Authorization header value received on either face, so a test can check
the caller's own token never arrived.

Run: python -m tests.servers.audience_api --port N --issuer URL --audience orders-api
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import jwt
import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CLAIMS = ("sub", "preferred_username", "azp", "aud", "scope")


class AudienceApi:
    def __init__(self, issuer: str, audience: str, mcp_app: ASGIApp) -> None:
        self.issuer, self.audience, self.mcp_app = issuer, audience, mcp_app
        self.jwks = jwt.PyJWKClient(f"{issuer}/protocol/openid-connect/certs", cache_keys=True)
        self.seen: list[str] = []
        self.calls: list[dict[str, Any]] = []

    def verify(self, header: str) -> dict[str, Any] | str:
        """The token's claims, or why it is refused."""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return "no bearer token"
        try:
            key = self.jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=self.audience, issuer=self.issuer)
        except jwt.PyJWTError as exc:
            return f"token refused: {exc}"
        return {name: claims.get(name) for name in CLAIMS}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan: the MCP server's session manager
            await self.mcp_app(scope, receive, send)
            return
        request = Request(scope, receive)
        header = request.headers.get("authorization", "")
        if header:
            self.seen.append(header)
        if scope["path"] == "/seen":
            await JSONResponse(self.seen)(scope, receive, send)
        elif scope["path"] == "/calls":
            await JSONResponse(self.calls)(scope, receive, send)
        elif scope["path"] == "/orders":
            claims = await asyncio.to_thread(self.verify, header)
            answer = JSONResponse(claims) if isinstance(claims, dict) else JSONResponse({"error": claims}, 401)
            await answer(scope, receive, send)
        else:
            await self._mcp(scope, request, header, send)

    async def _mcp(self, scope: Scope, request: Request, header: str, send: Send) -> None:
        body = await request.body() if scope["method"] == "POST" else b""
        try:
            method = json.loads(body).get("method") if body else None
        except (ValueError, AttributeError):
            method = None
        if method == "tools/call":
            claims = await asyncio.to_thread(self.verify, header)
            if not isinstance(claims, dict):
                await JSONResponse({"error": claims}, 401)(scope, request.receive, send)
                return
            self.calls.append(claims)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await request.receive()

        await self.mcp_app(scope, replay, send)


def build(issuer: str, audience: str) -> AudienceApi:
    server = MCPServer("orders-mcp")

    @server.tool()
    def open_orders() -> str:
        """The caller's open orders (the API checked who calls before this runs)."""
        return "2 open orders"

    return AudienceApi(issuer, audience, server.streamable_http_app())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--audience", required=True)
    args = parser.parse_args()
    uvicorn.run(build(args.issuer, args.audience), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
