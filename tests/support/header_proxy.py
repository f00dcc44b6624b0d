"""A loopback reverse proxy that adds one header to every request it forwards.

The official conformance suite has no flag for an Authorization header, so a test puts this
in front of the gateway to run the suite against an authenticated profile. Everything else
passes through untouched, Host and Origin included (the suite's DNS-rebinding scenario
depends on them), and responses stream back as they arrive (SSE).

Run: python -m tests.support.header_proxy --target http://127.0.0.1:PORT --port N
with the header in PROXY_HEADER ("Name: value"; an environment variable, so a secret
stays out of the process list).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx
import uvicorn
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# Per-connection headers (RFC 9110 section 7.6.1): each hop sets its own.
HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer", b"upgrade", b"proxy-connection"}


class HeaderProxy:
    def __init__(self, target: str, name: str, value: str) -> None:
        self.target = target.rstrip("/")
        self.header = (name.strip().lower().encode(), value.strip().encode())
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(None), follow_redirects=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan: nothing to set up
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
                await receive()
                await send({"type": "lifespan.shutdown.complete"})
            return
        request = Request(scope, receive)
        headers = [(k, v) for k, v in request.headers.raw if k not in HOP_BY_HOP and k != self.header[0]]
        headers.append(self.header)
        path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        url = self.target + path.decode("latin-1") + (f"?{query.decode('latin-1')}" if query else "")
        upstream = self.client.build_request(request.method, url, headers=headers, content=await request.body())
        response = await self.client.send(upstream, stream=True)
        reply = StreamingResponse(
            response.aiter_raw(), status_code=response.status_code, background=BackgroundTask(response.aclose)
        )
        reply.raw_headers = [(k, v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP]
        await reply(scope, receive, send)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="base URL to forward to")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    name, _, value = os.environ["PROXY_HEADER"].partition(":")
    uvicorn.run(HeaderProxy(args.target, name, value), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
