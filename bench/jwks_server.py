"""A local JWKS endpoint: `python -m bench.jwks_server PORT FILE` serves FILE at /jwks.json."""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route


def build(document: bytes) -> Starlette:
    async def jwks(_request: object) -> Response:
        return Response(document, media_type="application/json")

    return Starlette(routes=[Route("/jwks.json", jwks)])


if __name__ == "__main__":
    app = build(Path(sys.argv[2]).read_bytes())
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
