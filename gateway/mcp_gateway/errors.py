"""JSON-RPC shaped error responses: clear message, no internals, right status.

The response builder, the body-size code and the JSON media-type check are the
shared ones (`mcp_common.jsonrpc_errors`, as the adapter answers); the gateway adds
its own implementation-defined codes.
"""

from __future__ import annotations

from mcp_common.jsonrpc_errors import TOO_LARGE, error_response, is_json_media_type
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR

# Implementation-defined server errors (JSON-RPC reserves -32000..-32099).
UNAUTHORIZED = -32001
FORBIDDEN = -32003
RATE_LIMITED = -32029
UPSTREAM_ERROR = -32050
UPSTREAM_TIMEOUT = -32051
# The upstream's circuit is open (health.py): refused without trying it.
UPSTREAM_UNAVAILABLE = -32052
UNKNOWN_PROFILE = -32004
STORE_UNAVAILABLE = -32053
# A bearer token could not be checked: the identity provider's keys are unreachable.
IDP_UNAVAILABLE = -32054

__all__ = [
    "FORBIDDEN",
    "IDP_UNAVAILABLE",
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
    "UPSTREAM_UNAVAILABLE",
    "error_response",
    "is_json_media_type",
]
