"""An HTTP API that accepts only tokens made for it: the upstream of the token-exchange tests.

Every request must carry `Authorization: Bearer <JWT>` signed by the issuer's keys (its JWKS),
from that issuer, for this API's audience; anything else is a 401 naming the reason. `GET
/orders` answers who called (the token's sub, username, azp, aud, scope). `GET /seen` lists
every Authorization header value received, so a test can check the caller's own token never
arrived.

Run: python -m tests.servers.audience_api --port N --issuer URL --audience orders-api
"""

from __future__ import annotations

import argparse
from typing import Any

import jwt
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def build(issuer: str, audience: str) -> Starlette:
    jwks = jwt.PyJWKClient(f"{issuer}/protocol/openid-connect/certs", cache_keys=True)
    seen: list[str] = []

    def verify(request: Request) -> dict[str, Any] | JSONResponse:
        header = request.headers.get("authorization", "")
        seen.append(header)
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return JSONResponse({"error": "no bearer token"}, status_code=401)
        try:
            key = jwks.get_signing_key_from_jwt(token)
            return dict(jwt.decode(token, key.key, algorithms=["RS256"], audience=audience, issuer=issuer))
        except jwt.PyJWTError as exc:
            return JSONResponse({"error": f"token refused: {exc}"}, status_code=401)

    def orders(request: Request) -> JSONResponse:
        claims = verify(request)
        if isinstance(claims, JSONResponse):
            return claims
        fields = ("sub", "preferred_username", "azp", "aud", "scope")
        return JSONResponse({name: claims.get(name) for name in fields})

    def seen_headers(request: Request) -> JSONResponse:
        return JSONResponse(seen)

    return Starlette(routes=[Route("/orders", orders), Route("/seen", seen_headers)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--audience", required=True)
    args = parser.parse_args()
    uvicorn.run(build(args.issuer, args.audience), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
