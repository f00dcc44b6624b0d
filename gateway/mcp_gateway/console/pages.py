"""Read-only pages: overview, profile detail, audit log, and the static files."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Query, Request
from starlette.responses import Response

from mcp_gateway.catalog import principal_from_claims, tool_catalog
from mcp_gateway.config import Profile
from mcp_gateway.console import catalog, usage
from mcp_gateway.console.auditlog import AuditFilter, audit_page
from mcp_gateway.console.render import STATIC
from mcp_gateway.console.web import Ctx, base_url, context, not_found, render_page, router
from mcp_gateway.discovery.meta import DiscoveryError
from mcp_gateway.discovery.serve import operator_search

OUTCOMES = ["ok", "tool_error", "error", "timeout", "cancelled", "input_required", "policy_refused", "unknown_tool"]
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


@router.get("/")
async def overview(request: Request) -> Response:
    ctx = await context(request)
    viewer = ctx.who()
    states = await catalog.profile_states(ctx.gateway, viewer.profiles(ctx.config))
    return render_page(
        ctx,
        "overview.html",
        tenants=viewer.tenants(ctx.config),
        states=states,
        base=base_url(request, ctx.gateway),
    )


def _profile(ctx: Ctx, profile_id: str) -> Profile:
    profile = ctx.who().profile(ctx.config, profile_id)
    if profile is None:
        raise not_found(f"profile {profile_id!r}")
    return profile


async def _discovery(ctx: Ctx, profile: Profile, query: str | None) -> dict[str, Any]:
    """The profile page's "try a query" panel: what search_tools would answer a caller (any mode)."""
    if query is None:
        return {"query": None, "found": None, "error": None}
    try:
        found = await operator_search(ctx.gateway, profile, query, profile.discovery.max_results)
    except DiscoveryError as exc:
        return {"query": query, "found": None, "error": str(exc)}
    return {"query": query, "found": found["tools"], "ranking": found.get("ranking"), "error": None}


async def _preview(ctx: Ctx, profile: Profile, claims_text: str | None) -> dict[str, Any]:
    """The profile page's "see as a caller" panel: the tools a caller with these claims would list."""
    if claims_text is None:
        return {"claims": None, "tools": None, "error": None, "caller": None}
    try:
        claims = json.loads(claims_text)
    except json.JSONDecodeError as exc:
        claims = None
        error = f"the claims are not JSON ({exc.msg})"
    if not isinstance(claims, dict):
        error = error if claims is None else 'the claims must be a JSON object, e.g. {"sub": "alice"}'
        return {"claims": claims_text, "tools": None, "error": error, "caller": None}
    try:
        backend = await catalog.backend_of(ctx.gateway, profile)
    except Exception:
        return {"claims": claims_text, "tools": None, "error": "the profile's backend is not running", "caller": None}
    caller = principal_from_claims(profile, claims)
    tools = tool_catalog(backend, profile, ctx.gateway.policies.of(profile), caller)
    return {"claims": claims_text, "tools": tools, "error": None, "caller": caller.caller}


@router.get("/profiles/{profile_id}")
async def profile_detail(
    request: Request,
    profile_id: str,
    window: str = usage.DEFAULT_WINDOW,
    q: str | None = None,
    claims: Annotated[str | None, Query(alias="as", max_length=8192)] = None,
) -> Response:
    ctx = await context(request)
    profile = _profile(ctx, profile_id)
    state = await catalog.profile_state(ctx.gateway, profile)
    series = await usage.call_series(ctx.gateway, profile, window)
    return render_page(
        ctx,
        "profile.html",
        state=state,
        profile=profile,
        tenant=ctx.config.tenant(profile.tenant),
        endpoint=f"{base_url(request, ctx.gateway)}/{profile.id}/mcp",
        series=series,
        chart=usage.render_chart(series),
        windows=list(usage.WINDOWS),
        quotas=await usage.quota_lines(ctx.gateway, ctx.config, profile),
        discovery=await _discovery(ctx, profile, q),
        preview=await _preview(ctx, profile, claims),
    )


def _opt(value: str | None) -> str | None:
    return value.strip() or None if value else None


@router.get("/audit")
async def audit(
    request: Request,
    profile: str | None = None,
    caller: str | None = None,
    tool: str | None = None,
    outcome: str | None = None,
    before: int | None = None,
) -> Response:
    ctx = await context(request)
    viewer = ctx.who()
    profile, caller, tool, outcome = _opt(profile), _opt(caller), _opt(tool), _opt(outcome)
    if profile is not None:
        _profile(ctx, profile)
    filters = AuditFilter(viewer.tenant, profile, caller, tool, outcome, before)
    result = await audit_page(ctx.gateway, filters)
    key_names = {f"key:{k.id}": k.name for k in await ctx.gateway.store.list_keys(viewer.tenant) if k.name}
    query = {k: v for k, v in {"profile": profile, "caller": caller, "tool": tool, "outcome": outcome}.items() if v}
    return render_page(
        ctx,
        "audit.html",
        page=result,
        filters=filters,
        query=query,
        profiles=viewer.profiles(ctx.config),
        outcomes=OUTCOMES,
        key_names=key_names,
    )


@router.get("/static/{name}")
async def static(name: str) -> Response:
    path = STATIC / name
    media = STATIC_TYPES.get(path.suffix)
    if media is None or path.parent != STATIC or not path.is_file():
        raise not_found("file")
    return Response(path.read_bytes(), media_type=media, headers={"Cache-Control": "max-age=300"})
