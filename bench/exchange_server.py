"""A stand-in RFC 8693 token endpoint for the bench: `python -m bench.exchange_server PORT`.

POST /token answers every exchange with a new opaque token valid for an hour; GET /count says
how many exchanges it made (the bench checks the gateway made one for all its calls).
"""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def build() -> Starlette:
    made = [0]

    async def token(request: Request) -> JSONResponse:
        form = await request.form()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        made[0] += 1
        body = {"access_token": f"bench-exchanged-{made[0]}", "token_type": "Bearer", "expires_in": 3600}
        return JSONResponse(body | {"issued_token_type": "urn:ietf:params:oauth:token-type:access_token"})

    async def count(_request: Request) -> JSONResponse:
        return JSONResponse({"exchanges": made[0]})

    return Starlette(routes=[Route("/token", token, methods=["POST"]), Route("/count", count)])


if __name__ == "__main__":
    uvicorn.run(build(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
