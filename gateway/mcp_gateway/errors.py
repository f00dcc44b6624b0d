"""JSON-RPC shaped error responses: clear message, no internals, right status."""

from __future__ import annotations

import json
from typing import Any

from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR
from starlette.responses import Response

# Implementation-defined server errors (JSON-RPC reserves -32000..-32099).
UNAUTHORIZED = -32001
FORBIDDEN = -32003
RATE_LIMITED = -32029
UPSTREAM_ERROR = -32050
UPSTREAM_TIMEOUT = -32051
UNKNOWN_PROFILE = -32004
TOO_LARGE = -32013
STORE_UNAVAILABLE = -32053

__all__ = [
    "FORBIDDEN",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "RATE_LIMITED",
    "STORE_UNAVAILABLE",
    "TOO_LARGE",
    "UNAUTHORIZED",
    "UNKNOWN_PROFILE",
    "UPSTREAM_ERROR",
    "UPSTREAM_TIMEOUT",
    "jsonrpc_error",
]


def jsonrpc_error(
    status: int,
    code: int,
    message: str,
    request_id: Any = None,
    headers: dict[str, str] | None = None,
    data: dict[str, Any] | None = None,
) -> Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if data:
        error["data"] = data
    body = {"jsonrpc": "2.0", "id": request_id, "error": error}
    return Response(json.dumps(body), status_code=status, media_type="application/json", headers=headers)
