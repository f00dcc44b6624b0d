"""Where discovery meets the data path: the front asks `route()` about each request of a profile
whose discovery mode is not `off`.

- `tools/list`, `search_tools`, `describe_tools` are answered here (`Answer`), after the front's
  rate limit, from the profile's merged catalog filtered by the profile's policy.
- `call_tool` becomes a plain `tools/call` of the inner tool (`Rewrite`): the front then admits,
  charges and forwards it exactly like a direct call, so nothing is bypassed.
- Mode `hybrid`: a client that asks for the full list (`asks_for_full_list`) gets the ordinary
  `tools/list` (as with mode `off`); every other client gets the meta-tools, as in `search`.
  The ask is carried by each request itself, so it works alike in both protocol eras and needs
  no session state: a client whose configuration takes only a URL puts `?tools=all` in it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import anyio.to_thread
from mcp.shared.inbound import MCP_NAME_HEADER, encode_header_value, mcp_param_headers, x_mcp_header_map
from mcp_types import INVALID_PARAMS
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.responses import JSONResponse, Response

from mcp_gateway import errors
from mcp_gateway.auth import Principal
from mcp_gateway.config import Profile
from mcp_gateway.discovery import meta
from mcp_gateway.sessions import SessionInfo

if TYPE_CHECKING:
    from mcp_gateway.runtime import Gateway

_NAME = MCP_NAME_HEADER.lower().encode()
_PARAM_PREFIX = b"mcp-param-"
# How a client asks a `hybrid` profile for the full tool list (documented in docs/routing-config.md).
FULL_LIST_HEADER = b"x-mcp-gateway-tools"
FULL_LIST_QUERY = "tools"
FULL_LIST_VALUE = "all"


def asks_for_full_list(scope: Mapping[str, Any]) -> bool:
    """True when the request carries `X-MCP-Gateway-Tools: all` or `?tools=all` on the endpoint URL."""
    for key, value in scope.get("headers") or ():
        if key.lower() == FULL_LIST_HEADER and value.decode("latin-1").strip().lower() == FULL_LIST_VALUE:
            return True
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return any(v.strip().lower() == FULL_LIST_VALUE for v in query.get(FULL_LIST_QUERY, ()))


@dataclass(frozen=True)
class Answer:
    """Answered by the gateway; `respond` runs only once the request passed the rate limit."""

    respond: Callable[[], Awaitable[Response]]
    invalid: bool = False  # bad meta-tool input: answered with a JSON-RPC error


@dataclass(frozen=True)
class Rewrite:
    """`call_tool` as the inner tools/call: the new message, its body and the headers to forward."""

    message: dict[str, Any]
    body: bytes
    headers: list[tuple[bytes, bytes]]


def _result(rid: Any, result: dict[str, Any]) -> Response:
    return JSONResponse({"jsonrpc": "2.0", "id": rid, "result": result})


def _answer(response: Callable[[], Response], then: Callable[[], Awaitable[None]] | None = None) -> Answer:
    async def respond() -> Response:
        if then is not None:
            await then()
        return response()

    return Answer(respond)


def _invalid(rid: Any, message: str) -> Answer:
    answer = _answer(lambda: errors.error_response(200, INVALID_PARAMS, message, rid))
    return Answer(answer.respond, invalid=True)


async def route(
    gateway: Gateway,
    profile: Profile,
    message: dict[str, Any],
    headers: list[tuple[bytes, bytes]],
    session: SessionInfo | None = None,
    principal: Principal | None = None,
    full_list: bool = False,
) -> Answer | Rewrite | None:
    method = message.get("method")
    if "id" not in message or method not in ("tools/list", "tools/call"):
        return None
    if method == "tools/list" and full_list and profile.discovery.mode == "hybrid":
        return None  # the ordinary list, paginated and policy-filtered as with discovery off
    name = (message.get("params") or {}).get("name") if method == "tools/call" else None
    if method == "tools/call" and name not in meta.META_NAMES:
        return None  # a direct call of a listed (alwaysVisible) or known tool: the ordinary path
    backend = await gateway.backends.get(profile)
    aggregator = getattr(backend, "aggregator", None)
    if aggregator is None:
        return None
    meta_name = name if isinstance(name, str) else "tools/list"
    catalog = aggregator.catalog
    allowed = caller_filter(gateway, profile, backend, principal)
    routed = await _route(gateway, profile, message, headers, backend, catalog, meta_name, session, allowed)
    invalid = isinstance(routed, Answer) and routed.invalid
    gateway.metrics.discovery.labels(profile.tenant, profile.id, meta_name, "invalid" if invalid else "ok").inc()
    return routed


async def _route(
    gateway: Gateway,
    profile: Profile,
    message: dict[str, Any],
    headers: list[tuple[bytes, bytes]],
    backend: Any,
    catalog: Any,
    name: str,
    session: SessionInfo | None,
    allowed: Callable[[str], bool],
) -> Answer | Rewrite:
    rid = message["id"]
    params = message.get("params") or {}
    discovery = profile.discovery
    modern = _protocol_version(headers) in MODERN_PROTOCOL_VERSIONS
    revealing = discovery.reveal and session is not None and not modern
    if message["method"] == "tools/list":
        revealed = gateway.revealed.of(session) if revealing and session is not None else []
        listing: dict[str, Any] = {"tools": meta.visible_tools(discovery, catalog, allowed, revealed)}
        hint = getattr(backend, "list_cache_hint", lambda _: None)("tools/list")
        if modern and hint is not None:  # 2026-07-28 list results carry their cache hint
            listing |= {"resultType": "complete", "ttlMs": hint.ttl_ms, "cacheScope": hint.scope}
        return _answer(lambda: _result(rid, listing))
    try:
        arguments = meta.call_arguments(params)
        if name == meta.CALL_TOOL:
            inner, inner_args = meta.inner_call(catalog, allowed, params)
            return rewrite_call(message, headers, inner, inner_args, catalog.tools[inner][1].input_schema)
        if name == meta.SEARCH_TOOLS:
            index = await gateway.discovery_indexes.of(profile.id, catalog, discovery.ranking)
            payload = await _search(discovery, index, catalog, allowed, arguments)
        else:
            payload = meta.describe(catalog, allowed, arguments)
    except meta.DiscoveryError as exc:
        return _invalid(rid, f"{name}: {exc}")
    result = meta.tool_result(payload) | ({"resultType": "complete"} if modern else {})
    then = None
    if name == meta.SEARCH_TOOLS and revealing and session is not None and payload["tools"]:
        found, known = [t["name"] for t in payload["tools"]], session

        async def reveal() -> None:  # only once the request passed the rate limit
            await gateway.revealed.reveal(known, found)

        then = reveal
    return _answer(lambda: _result(rid, result), then)


def caller_filter(
    gateway: Gateway, profile: Profile, backend: Any, principal: Principal | None
) -> Callable[[str], bool]:
    """Is a tool visible to this caller: the profile's globs, then its CEL rules without arguments
    (rules.py; a `call_tool` is judged with its arguments by the front, as the inner call)."""
    policy = gateway.policies.of(profile)
    if principal is None or not policy.rules.applies_to("tool"):
        return policy.allows_tool
    upstream_of = getattr(backend, "upstream_of", lambda kind, name: "")
    rules, caller = policy.rules, principal

    def allowed(name: str) -> bool:
        return policy.allows_tool(name) and rules.decide("tool", name, upstream_of("tool", name), caller).allowed

    return allowed


def _protocol_version(headers: list[tuple[bytes, bytes]]) -> str | None:
    for key, value in headers:
        if key.lower() == b"mcp-protocol-version":
            return value.decode("latin-1")
    return None


def rewrite_call(
    message: dict[str, Any], headers: list[tuple[bytes, bytes]], name: str, arguments: dict[str, Any], schema: Any
) -> Rewrite:
    params = {**(message.get("params") or {}), "name": name, "arguments": arguments}
    inner = {**message, "params": params}
    body = json.dumps(inner, separators=(",", ":")).encode()
    kept = [
        (k, v)
        for k, v in headers
        if k.lower() not in (_NAME, b"content-length") and not k.lower().startswith(_PARAM_PREFIX)
    ]
    kept.append((b"content-length", str(len(body)).encode()))
    if any(k.lower() == _NAME for k, _ in headers):
        kept.append((_NAME, encode_header_value(name).encode()))
    # 2026-07-28 tools may ask for some arguments mirrored in Mcp-Param-* headers; the client mirrored
    # call_tool's, so the inner tool's are derived here from the inner arguments.
    if isinstance(schema, dict):
        for header, value in mcp_param_headers(x_mcp_header_map(schema), arguments).items():
            kept.append((header.lower().encode(), value.encode()))
    return Rewrite(inner, body, kept)


async def operator_search(
    gateway: Gateway, profile: Profile, query: str, limit: int, caller: Principal | None = None
) -> dict[str, Any]:
    """What `search_tools` would answer on this profile (admin API, CLI, console); any mode.

    Without `caller` it is the operator's view: the profile's globs only, i.e. every tool some
    caller may find; per-caller CEL rules are not applied, as there is no caller. With `caller`
    (a preview, `tools --search --as`) it is exactly that caller's `search_tools`, rules and all.
    Raises meta.DiscoveryError for a bad query or limit."""
    backend = await gateway.backends.get(profile)
    aggregator = getattr(backend, "aggregator", None)
    if aggregator is None:
        return {"tools": [], "total": 0, "ranking": profile.discovery.ranking}
    catalog = aggregator.catalog
    index = await gateway.discovery_indexes.of(profile.id, catalog, profile.discovery.ranking)
    allowed = caller_filter(gateway, profile, backend, caller)
    found = await _search(profile.discovery, index, catalog, allowed, {"query": query, "limit": limit})
    return found | {"ranking": index.kind}


async def _search(discovery: Any, index: Any, catalog: Any, allowed: Any, arguments: dict[str, Any]) -> dict[str, Any]:
    """meta.search; a semantic search embeds the query (milliseconds of CPU) in a worker thread."""
    if index.kind == "semantic":
        return await anyio.to_thread.run_sync(meta.search, discovery, index, catalog, allowed, arguments)
    return meta.search(discovery, index, catalog, allowed, arguments)
