"""Keys: API keys (create with the secret shown once, revoke) and tenant console tokens."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from mcp_gateway.auth.apikeys import check_labels, new_key
from mcp_gateway.console import access
from mcp_gateway.console.web import (
    PREFIX,
    Ctx,
    Refused,
    base_url,
    context,
    log,
    not_found,
    read_form,
    render_page,
    router,
    tenant_for,
)

EXPIRY_DAYS = {"": None, "1": 1, "30": 30, "90": 90, "365": 365}


async def _keys_page(request: Request, ctx: Ctx, tenant_id: str, status: int = 200, **extra: Any) -> Response:
    viewer = ctx.who()
    records = await ctx.gateway.store.list_keys(tenant_id)
    api_keys = [r for r in records if not access.is_console_token(r)]
    console_tokens = [r for r in records if access.is_console_token(r)] if viewer.is_admin else []
    return render_page(
        ctx,
        "keys.html",
        status,
        tenant_id=tenant_id,
        tenants=viewer.tenants(ctx.config),
        profiles=[p for p in ctx.config.profiles if p.tenant == tenant_id],
        api_keys=sorted(api_keys, key=lambda r: r.created_at, reverse=True),
        console_tokens=sorted(console_tokens, key=lambda r: r.created_at, reverse=True),
        expiry_days=list(EXPIRY_DAYS),
        now=datetime.now(UTC),
        **extra,
    )


@router.get("/keys")
async def keys(request: Request, tenant: str | None = None) -> Response:
    ctx = await context(request)
    return await _keys_page(request, ctx, tenant_for(ctx, ctx.who(), tenant))


def _expiry(form: FormData) -> datetime | None:
    days = EXPIRY_DAYS.get(str(form.get("expires_days", "")))
    return datetime.now(UTC) + timedelta(days=days) if days else None


def _labels(text: str) -> dict[str, str]:
    """`team=payments, env=ci` from the form, checked like the admin API's labels."""
    labels: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = pair.partition("=")
        if not sep:
            raise Refused(422, f"label {pair[:80]!r}: use name=value, separated by commas")
        labels[name.strip()] = value.strip()
    try:
        return check_labels(labels)
    except ValueError as exc:
        raise Refused(422, str(exc)) from None


def client_config(base: str, profile_ids: list[str], key: str) -> str:
    """A ready-to-paste `mcpServers` block for MCP clients that speak streamable HTTP."""
    servers = {
        pid: {"type": "http", "url": f"{base}/{pid}/mcp", "headers": {"Authorization": f"Bearer {key}"}}
        for pid in profile_ids
    }
    return json.dumps({"mcpServers": servers}, indent=2)


@router.post("/keys")
async def create_key(request: Request) -> Response:
    ctx = await context(request)
    viewer = ctx.who()
    form = await read_form(request, ctx)
    tenant_id = tenant_for(ctx, viewer, str(form.get("tenant", "")) or None)
    tenant = ctx.config.tenant(tenant_id)
    if tenant is not None and not tenant.api_keys.admin_api:
        raise Refused(403, f"tenant {tenant_id!r} takes its API keys from Kubernetes Secrets only (apiKeys.adminApi)")
    owned = [p.id for p in ctx.config.profiles if p.tenant == tenant_id]
    chosen = [str(p) for p in form.getlist("profiles")]
    if any(p not in owned for p in chosen):
        raise not_found("profile")
    name = str(form.get("name", "")).strip()[:200]
    labels = _labels(str(form.get("labels", "")))
    key, record = new_key(ctx.gateway.authenticator.hasher, tenant_id, chosen, name, _expiry(form), labels)
    await ctx.gateway.store.insert_key(record)
    log.info("console created API key", extra={"tenant": tenant_id, "key_id": record.id})
    config = client_config(base_url(request, ctx.gateway), chosen or owned, key)
    return render_page(ctx, "created.html", kind="API key", record=record, secret=key, client_config=config)


@router.post("/console-tokens")
async def create_console_token(request: Request) -> Response:
    ctx = await context(request)
    viewer = ctx.who()
    form = await read_form(request, ctx)
    if not viewer.is_admin:
        raise Refused(403, "only operators (admin login) can create console tokens")
    tenant_id = tenant_for(ctx, viewer, str(form.get("tenant", "")) or None)
    name = str(form.get("name", "")).strip()[:200]
    token, record = access.mint_console_token(ctx.gateway, tenant_id, name, _expiry(form))
    await ctx.gateway.store.insert_key(record)
    log.info("console created console token", extra={"tenant": tenant_id, "key_id": record.id})
    return render_page(ctx, "created.html", kind="console token", record=record, secret=token, client_config=None)


@router.post("/keys/{key_id}/revoke")
async def revoke_key(request: Request, key_id: str) -> Response:
    ctx = await context(request)
    viewer = ctx.who()
    await read_form(request, ctx)
    record = await ctx.gateway.store.get_key(key_id)
    if record is None or not viewer.sees(record.tenant) or (access.is_console_token(record) and not viewer.is_admin):
        raise not_found("key")
    await ctx.gateway.store.revoke_key(key_id)
    log.info("console revoked key", extra={"tenant": record.tenant, "key_id": key_id})
    return RedirectResponse(f"{PREFIX}/keys?tenant={record.tenant}", status_code=303)
