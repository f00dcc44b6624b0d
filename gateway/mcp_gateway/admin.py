"""Admin API under /admin/v1 (bearer token from MCP_GATEWAY_ADMIN_TOKEN).

Tenants and profiles are read-only here: the routing config (or, in
Kubernetes, the operator) owns them. API keys are created (the secret is in
the response once and never again), listed (prefix and metadata only) and
revoked. Quota usage and the audit log are readable, the latter with paging.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from mcp_gateway.auth import Principal
from mcp_gateway.auth.apikeys import check_labels, new_key
from mcp_gateway.catalog import principal_from_claims, tool_catalog
from mcp_gateway.discovery.meta import DiscoveryError
from mcp_gateway.discovery.serve import operator_search
from mcp_gateway.runtime import Gateway
from mcp_gateway.store.base import AuditQuery


class KeyCreate(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    name: str = Field(default="", max_length=200)
    profiles: list[str] = Field(
        default_factory=list, description="Profiles the key may open; empty = all of the tenant's"
    )
    expires_in_seconds: int | None = Field(default=None, gt=0)
    labels: dict[str, str] = Field(
        default_factory=dict, description="Labels policy rules read as key.labels (e.g. team: payments)"
    )

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        return check_labels(labels)


class CallerPreview(BaseModel):
    model_config = ConfigDict(extra="forbid")

    claims: dict[str, Any] = Field(
        default_factory=dict, description="The caller's claims (as a verified token would carry them)"
    )


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def admin_refusal(gateway: Gateway, authorization: str) -> HTTPException | None:
    """Why a request with this Authorization header may not use the admin API, or None."""
    if not gateway.admin_token:
        return HTTPException(503, "the admin API is disabled: set MCP_GATEWAY_ADMIN_TOKEN to enable it")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), gateway.admin_token.encode()):
        return HTTPException(401, "admin bearer token missing or wrong", headers={"WWW-Authenticate": "Bearer"})
    return None


def require_admin(request: Request) -> Gateway:
    # app.py already refused unauthenticated admin requests before their body was parsed; this
    # dependency documents the security scheme and guards the routes wherever they are mounted.
    gateway = _gateway(request)
    refusal = admin_refusal(gateway, request.headers.get("authorization", ""))
    if refusal is not None:
        raise refusal
    return gateway


Admin = Annotated[Gateway, Depends(require_admin)]
router = APIRouter(prefix="/admin/v1", tags=["admin"])


def _tenant_or_404(gateway: Gateway, tenant_id: str) -> Any:
    tenant = gateway.holder.config.tenant(tenant_id)
    if tenant is None:
        raise HTTPException(404, f"unknown tenant {tenant_id!r}")
    return tenant


@router.get("/tenants", summary="List tenants")
async def list_tenants(gateway: Admin) -> list[dict[str, Any]]:
    config = gateway.holder.config
    return [
        {**t.model_dump(by_alias=True, mode="json"), "profiles": [p.id for p in config.profiles if p.tenant == t.id]}
        for t in config.tenants
    ]


@router.get("/tenants/{tenant_id}", summary="One tenant")
async def get_tenant(tenant_id: str, gateway: Admin) -> dict[str, Any]:
    tenant = _tenant_or_404(gateway, tenant_id)
    profiles = [p.id for p in gateway.holder.config.profiles if p.tenant == tenant_id]
    return {**tenant.model_dump(by_alias=True, mode="json"), "profiles": profiles}


@router.get("/profiles", summary="List profiles")
async def list_profiles(gateway: Admin, tenant: str | None = None) -> list[dict[str, Any]]:
    return [
        p.model_dump(by_alias=True, mode="json")
        for p in gateway.holder.config.profiles
        if tenant is None or p.tenant == tenant
    ]


@router.get("/profiles/{profile_id}", summary="One profile")
async def get_profile(profile_id: str, gateway: Admin) -> dict[str, Any]:
    profile = gateway.holder.config.profile(profile_id)
    if profile is None:
        raise HTTPException(404, f"unknown profile {profile_id!r}")
    return profile.model_dump(by_alias=True, mode="json")


@router.get("/profiles/{profile_id}/tools", summary="The tools of a profile's upstreams, marked allowed or hidden")
async def profile_tools(profile_id: str, gateway: Admin) -> dict[str, Any]:
    """Every tool the profile's upstreams offer under its exposed name; `allowed: false` = hidden by policy."""
    profile = gateway.holder.config.profile(profile_id)
    if profile is None:
        raise HTTPException(404, f"unknown profile {profile_id!r}")
    backend = await gateway.backends.get(profile)
    tools = tool_catalog(backend, profile, gateway.policies.of(profile))
    return {"profile": profile_id, "tenant": profile.tenant, "tools": tools}


@router.post("/profiles/{profile_id}/tools/as", summary="The tools a caller with these claims would see")
async def profile_tools_as(profile_id: str, body: CallerPreview, gateway: Admin) -> dict[str, Any]:
    """Every tool of the profile, `allowed` as the caller's tools/list would show it (globs, then the
    CEL policy rules without arguments); `rule` names the rule that hides a tool."""
    profile = gateway.holder.config.profile(profile_id)
    if profile is None:
        raise HTTPException(404, f"unknown profile {profile_id!r}")
    backend = await gateway.backends.get(profile)
    caller = principal_from_claims(profile, body.claims)
    tools = tool_catalog(backend, profile, gateway.policies.of(profile), caller)
    rules = [rule.name for rule in profile.policy.rules]
    return {"profile": profile_id, "tenant": profile.tenant, "caller": caller.caller, "rules": rules, "tools": tools}


@router.get("/profiles/{profile_id}/tools/search", summary="Rank a profile's tools for a query (operator view)")
async def profile_tool_search(
    profile_id: str, gateway: Admin, q: str = "", limit: Annotated[int, Query(ge=1, le=50)] = 10
) -> dict[str, Any]:
    """The tools `search_tools` finds on the profile through its globs, whatever its mode: the operator's
    view, without per-caller CEL rules (there is no caller). `POST .../tools/search/as` is a caller's view."""
    return await _search(gateway, profile_id, q, limit, None)


@router.post("/profiles/{profile_id}/tools/search/as", summary="What search_tools would answer a caller")
async def profile_tool_search_as(
    profile_id: str,
    body: CallerPreview,
    gateway: Admin,
    q: str = "",
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> dict[str, Any]:
    """The tools a caller with these claims would find with `search_tools`: globs, then its CEL rules."""
    profile = gateway.holder.config.profile(profile_id)
    caller = principal_from_claims(profile, body.claims) if profile is not None else None
    found = await _search(gateway, profile_id, q, limit, caller)
    return found | {"caller": caller.caller if caller else None}


async def _search(gateway: Gateway, profile_id: str, q: str, limit: int, caller: Principal | None) -> dict[str, Any]:
    profile = gateway.holder.config.profile(profile_id)
    if profile is None:
        raise HTTPException(404, f"unknown profile {profile_id!r}")
    try:
        found = await operator_search(gateway, profile, q, min(limit, profile.discovery.max_results), caller)
    except DiscoveryError as exc:
        raise HTTPException(400, str(exc)) from None
    return {"profile": profile_id, "mode": profile.discovery.mode, "query": q, **found}


@router.post("/tenants/{tenant_id}/keys", status_code=201, summary="Create an API key (the secret is shown once)")
async def create_key(tenant_id: str, body: KeyCreate, gateway: Admin) -> dict[str, Any]:
    tenant = _tenant_or_404(gateway, tenant_id)
    if not tenant.api_keys.admin_api:
        raise HTTPException(
            403,
            f"tenant {tenant_id!r} takes its API keys from Secrets only (apiKeys.adminApi is false); "
            "add the key to one of its Secrets, or set apiKeys.adminApi to true on the Tenant",
        )
    owned = {p.id for p in gateway.holder.config.profiles if p.tenant == tenant_id}
    foreign = [p for p in body.profiles if p not in owned]
    if foreign:
        raise HTTPException(422, f"profiles {foreign} do not belong to tenant {tenant_id!r}")
    expires = datetime.now(UTC) + timedelta(seconds=body.expires_in_seconds) if body.expires_in_seconds else None
    key, record = new_key(gateway.authenticator.hasher, tenant_id, body.profiles, body.name, expires, body.labels)
    await gateway.store.insert_key(record)
    return {**record.public(), "key": key}


@router.get("/tenants/{tenant_id}/keys", summary="List a tenant's API keys (prefix and metadata only)")
async def list_keys(tenant_id: str, gateway: Admin) -> list[dict[str, Any]]:
    return [k.public() for k in await gateway.store.list_keys(tenant_id)]


@router.delete("/keys/{key_id}", summary="Revoke an API key")
async def revoke_key(key_id: str, gateway: Admin) -> dict[str, Any]:
    if not await gateway.store.revoke_key(key_id):
        raise HTTPException(404, f"unknown API key {key_id!r}")
    record = await gateway.store.get_key(key_id)
    assert record is not None
    return record.public()


@router.get("/tenants/{tenant_id}/usage", summary="Quota usage of a tenant and its callers")
async def usage(tenant_id: str, gateway: Admin) -> dict[str, Any]:
    tenant = _tenant_or_404(gateway, tenant_id)
    tenant_rows = await gateway.store.usage(f"tenant:{tenant_id}")
    caller_rows = await gateway.store.usage(f"caller:{tenant_id}:", nested=True)
    quota = tenant.limits.quota.model_dump(by_alias=True) if tenant.limits.quota else None
    return {
        "tenant": tenant_id,
        "quota": quota,
        "counters": [{"scope": s, "period": p, "used": n} for s, p, n in tenant_rows + caller_rows],
    }


# PostgreSQL text cannot hold NUL: refuse it up front (422) rather than fail in the query.
AuditFilter = Annotated[str | None, Query(max_length=256, pattern=r"^[^\x00]*$")]


@router.get("/audit", summary="Audit log, newest first; page with `before` = the last id you got")
async def audit(
    gateway: Admin,
    tenant: AuditFilter = None,
    profile: AuditFilter = None,
    tool: AuditFilter = None,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    await gateway.audit.flush()
    records = await gateway.store.query_audit(AuditQuery(tenant, profile, tool, before, limit))
    items = [r.public() for r in records]
    next_before = items[-1]["id"] if len(items) == limit else None
    return {"items": items, "nextBefore": next_before}
