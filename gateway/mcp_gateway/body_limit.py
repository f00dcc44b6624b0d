"""Request bodies read whole, up to a limit, before any parser sees them.

The MCP front reads its bodies with `read_body` (gateway.maxRequestBytes). The console and
the admin API go through `limited`: their bodies are small forms and JSON documents, so a
request announcing or streaming more than gateway.maxAdminRequestBytes gets 413 before
Starlette's form or JSON parser buffers anything (an unauthenticated console form could
otherwise make the gateway hold up to a gigabyte).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send


class TooLarge(Exception):
    pass


def declared_length(scope: Scope) -> int | None:
    """The Content-Length header as a number; None when absent or not a plain number."""
    value = Headers(scope=scope).get("content-length")
    return int(value) if value is not None and value.isdigit() else None


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole body; TooLarge as soon as more than `limit` bytes have arrived."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands out `body` once, then defers to the real one (disconnects)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def too_large_response(path: str, limit: int) -> Response:
    message = f"request body exceeds {limit} bytes (gateway.maxAdminRequestBytes)"
    if path.startswith("/console"):
        # Imported here: the console package imports the runtime, which must not import it back.
        from mcp_gateway.console.render import page

        return page("error.html", 413, message=message, viewer=None)
    return JSONResponse({"detail": message}, status_code=413)


async def limited(
    app: Callable[[Scope, Receive, Send], Awaitable[None]], limit: int, scope: Scope, receive: Receive, send: Send
) -> None:
    """Run `app` with the request body capped at `limit` bytes (Content-Length first, then streamed)."""
    length = declared_length(scope)
    if length is not None and length > limit:
        await too_large_response(scope["path"], limit)(scope, receive, send)
        return
    try:
        body = await read_body(receive, limit)
    except TooLarge:
        await too_large_response(scope["path"], limit)(scope, receive, send)
        return
    await app(scope, replay(body, receive), send)
