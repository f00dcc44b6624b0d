"""A request body read ahead and handed on unchanged.

Tracing needs a JSON-RPC request's `_meta` (its trace context) before the app that serves it
runs: the SERVER span must start with the right parent. The body is read up to a limit (the
app's own, so nothing larger is held than the app would hold), then replayed message by message,
so the app sees exactly what the client sent, disconnects included.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import Message, Receive


async def peek(receive: Receive, limit: int) -> list[Message]:
    """The request's ASGI messages up to the end of its body, or until more than `limit` bytes came."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages
        size += len(message.get("body", b""))
        if not message.get("more_body") or size > limit:
            return messages


def whole_body(peeked: list[Message]) -> bytes | None:
    """The body, when `peek` read all of it; None when it stopped at the limit or at a disconnect."""
    if not peeked or peeked[-1]["type"] != "http.request" or peeked[-1].get("more_body"):
        return None
    return b"".join(m.get("body", b"") for m in peeked)


def json_object(body: bytes | None) -> dict[str, Any] | None:
    """The body as a JSON object, or None (the app answers a malformed body with its own error)."""
    if body is None:
        return None
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return message if isinstance(message, dict) else None


def replay(peeked: list[Message], receive: Receive) -> Receive:
    """A receive that hands out the peeked messages first, then defers to the real one."""
    pending = list(peeked)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
