"""Every HTTP error an MCP endpoint answers is a JSON-RPC error body that says what is wrong and how to fix it.

- `error_body` / `error_response`: the JSON-RPC error object (`id: null` when
  the request's id is unknown) as bytes or as a Starlette response.
- `JsonRpcErrors`: ASGI wrapper for an MCP endpoint served by the SDK. It
  refuses a POST whose Content-Type is not JSON with 415 before the body is
  read, and rewrites any error response the wrapped app produces without a
  JSON body (the SDK answers some with plain text or nothing at all: 400 for
  the Content-Type, 413 for the body limit, 406 for the Accept header, 405) into
  a JSON-RPC error with the same status, headers (e.g. `Allow`) kept. An
  exception escaping the app before it answered becomes a 500 JSON-RPC error
  without details (those go to the log).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INTERNAL_ERROR = -32603
TOO_LARGE = -32013
"""Implementation-defined (JSON-RPC reserves -32000..-32099 for servers): the request body is over the limit."""

_KEPT_EXCERPT = 200  # bytes of the wrapped app's own error text worth quoting
_DROPPED_HEADERS = {b"content-type", b"content-length"}


def error_body(code: int, message: str, request_id: Any = None, data: dict[str, Any] | None = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if data:
        error["data"] = data
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "error": error}).encode()


def error_response(
    status: int,
    code: int,
    message: str,
    request_id: Any = None,
    headers: dict[str, str] | None = None,
    data: dict[str, Any] | None = None,
) -> Response:
    body = error_body(code, message, request_id, data)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def is_json_media_type(content_type: str) -> bool:
    """`application/json`, parameters (charset) allowed; not look-alikes such as `application/jsonx`."""
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def _quote(raw: str, limit: int = 120) -> str:
    shown = raw if len(raw) <= limit else raw[:limit] + "…"
    return repr(shown)


def explain(
    status: int, scope: Scope, response_headers: Headers, said: str, max_body_bytes: int | None = None
) -> tuple[int, str]:
    """The JSON-RPC code and message for the HTTP error `status` the request (`scope`) ran into.

    `said` is the answering app's own (plain-text) explanation, if any.
    """
    headers = Headers(scope=scope)
    if status == 406:
        accept = headers.get("accept")
        sent = f"this request sent Accept: {_quote(accept)}" if accept is not None else "this request sent none"
        return INVALID_REQUEST, (
            f"Not Acceptable: the Accept header must list both application/json and text/event-stream ({sent})"
        )
    if status == 413:
        limit = f"the limit of {max_body_bytes} bytes" if max_body_bytes else "the size limit"
        return TOO_LARGE, f"request body exceeds {limit}; send a smaller JSON-RPC message"
    if status == 415:
        return INVALID_REQUEST, _content_type_message(headers)
    if status == 405:
        return INVALID_REQUEST, f"HTTP method {scope['method']} is not allowed here; {_allowed(response_headers)}"
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = f"HTTP {status}"
    detail = f": {said}" if said else ""
    return (INTERNAL_ERROR if status >= 500 else INVALID_REQUEST), f"{phrase}{detail}"


def _content_type_message(headers: Headers) -> str:
    sent = headers.get("content-type")
    shown = f"this request sent {_quote(sent)}" if sent else "this request sent none"
    return f"Unsupported Media Type: POST a JSON-RPC message with Content-Type: application/json ({shown})"


def _allowed(response_headers: Headers) -> str:
    allow = response_headers.get("allow")
    if allow:
        return f"use {allow}"
    return "send JSON-RPC messages with POST (GET and DELETE need an Mcp-Session-Id from a handshake session)"


class JsonRpcErrors:
    """Wraps an MCP endpoint so that no error reaches a client without a JSON-RPC error body."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if scope["method"] == "POST" and not is_json_media_type(headers.get("content-type", "")):
            await error_response(415, INVALID_REQUEST, _content_type_message(headers))(scope, receive, send)
            return

        def explained(status: int, response_headers: Headers, said: str) -> tuple[int, str]:
            return explain(status, scope, response_headers, said, self.max_body_bytes)

        rewriter = _Rewriter(send, explained)
        try:
            await self.app(scope, receive, rewriter.send)
        except Exception:
            if rewriter.started:
                raise
            logger.exception("unexpected error serving an MCP request")
            await rewriter.replace(500, INTERNAL_ERROR, "internal error; the server's log has the details", [])


class _Rewriter:
    """A `send` that holds back an error response without a JSON body and sends a JSON-RPC one instead."""

    def __init__(self, send: Send, explain: Callable[[int, Headers, str], tuple[int, str]]) -> None:
        self._send = send
        self._explain = explain
        self._held: Message | None = None
        self._text = bytearray()
        self.started = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            if message["status"] >= 400 and not is_json_media_type(
                Headers(raw=message["headers"]).get("content-type", "")
            ):
                self._held = message
                return
            self.started = True
        elif message["type"] == "http.response.body" and self._held is not None:
            if len(self._text) < _KEPT_EXCERPT:
                self._text += message.get("body", b"")[:_KEPT_EXCERPT]
            if not message.get("more_body", False):
                held, self._held = self._held, None
                response_headers = Headers(raw=held["headers"])
                said = self._text[:_KEPT_EXCERPT].decode("utf-8", "replace").strip()
                code, text = self._explain(held["status"], response_headers, said)
                kept = [(k, v) for k, v in held["headers"] if k.lower() not in _DROPPED_HEADERS]
                await self.replace(held["status"], code, text, kept)
            return
        await self._send(message)

    async def replace(self, status: int, code: int, message: str, headers: list[tuple[bytes, bytes]]) -> None:
        body = error_body(code, message)
        self.started = True
        start_headers = [
            *headers,
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await self._send({"type": "http.response.start", "status": status, "headers": start_headers})
        await self._send({"type": "http.response.body", "body": body})
