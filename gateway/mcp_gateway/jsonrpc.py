"""Checks on one inbound JSON-RPC message before it reaches the MCP server."""

from __future__ import annotations

from typing import Any

from mcp.shared.inbound import MCP_METHOD_HEADER, MCP_NAME_HEADER, NAME_BEARING_METHODS, decode_header_value
from mcp_types import HEADER_MISMATCH, INVALID_REQUEST
from starlette.datastructures import Headers


class MessageRejected(Exception):
    def __init__(self, code: int, message: str, request_id: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


def _valid_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def validate_message(message: Any) -> dict[str, Any]:
    """The message as a dict, or MessageRejected(INVALID_REQUEST) saying what is wrong."""
    if isinstance(message, list):
        raise MessageRejected(INVALID_REQUEST, "JSON-RPC batches are not supported: send one message per request")
    if not isinstance(message, dict):
        raise MessageRejected(INVALID_REQUEST, "the body must be a JSON-RPC 2.0 object")
    request_id = message.get("id")
    rid = request_id if _valid_id(request_id) else None
    if message.get("jsonrpc") != "2.0":
        raise MessageRejected(INVALID_REQUEST, 'the message must have "jsonrpc": "2.0"', rid)
    if "id" in message and not _valid_id(request_id):
        raise MessageRejected(INVALID_REQUEST, '"id" must be a string or an integer', None)
    if "method" in message:
        if not isinstance(message["method"], str) or not message["method"]:
            raise MessageRejected(INVALID_REQUEST, '"method" must be a non-empty string', rid)
        params = message.get("params")
        if params is not None and not isinstance(params, dict):
            raise MessageRejected(INVALID_REQUEST, '"params" must be an object', rid)
    elif "id" not in message or ("result" not in message and "error" not in message):
        raise MessageRejected(INVALID_REQUEST, 'the message needs a "method", or an "id" with "result"/"error"', rid)
    return message


def check_routing_headers(message: dict[str, Any], headers: Headers, modern: bool) -> None:
    """Refuse a request whose Mcp-Method / Mcp-Name headers disagree with its body.

    2026-07-28 requests must carry them (so a refusal happens here, before any
    quota is charged); older clients may omit them, but must not contradict the body.
    """
    method = message.get("method")
    if method is None:
        return
    rid = message.get("id")
    header_method = headers.get(MCP_METHOD_HEADER)
    if (header_method is not None or modern) and header_method != method:
        raise MessageRejected(HEADER_MISMATCH, "Mcp-Method header does not match the request body's method", rid)
    header_name = headers.get(MCP_NAME_HEADER)
    key = NAME_BEARING_METHODS.get(method or "")
    body_has_name = key is not None and (message.get("params") or {}).get(key) is not None
    if key is not None and (header_name is not None or (modern and body_has_name)):
        body_value = (message.get("params") or {}).get(key)
        if decode_header_value(header_name) != body_value:
            raise MessageRejected(HEADER_MISMATCH, f"Mcp-Name header does not match the request body's {key!r}", rid)


def tool_name(message: dict[str, Any]) -> str | None:
    if message.get("method") != "tools/call":
        return None
    name = (message.get("params") or {}).get("name")
    return name if isinstance(name, str) else None
