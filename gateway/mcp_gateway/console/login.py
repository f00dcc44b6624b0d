"""Logging in and out: the admin token (operators) or a tenant console token."""

from __future__ import annotations

from fastapi import Request
from starlette.responses import RedirectResponse, Response

from mcp_gateway.console import access
from mcp_gateway.console.session import Session, revocation
from mcp_gateway.console.web import PREFIX, context, log, read_form, render_page, router, with_cookie


@router.get("")
async def root() -> Response:
    return RedirectResponse(f"{PREFIX}/", status_code=303)


@router.get("/login")
async def login_form(request: Request) -> Response:
    ctx = await context(request)
    if ctx.viewer is not None:
        return RedirectResponse(f"{PREFIX}/", status_code=303)
    return with_cookie(render_page(ctx, "login.html"), request, ctx, ctx.session)


@router.post("/login")
async def login_submit(request: Request) -> Response:
    ctx = await context(request)
    form = await read_form(request, ctx)
    session = await access.login(ctx.gateway, ctx.codec, str(form.get("token", "")))
    if session is None:
        log.info("console login refused")
        response = render_page(
            ctx, "login.html", 401, error="That token is not valid. Use the admin token or a console token."
        )
        return response
    log.info("console login", extra={"role": session.role, "tenant": session.tenant})
    return with_cookie(RedirectResponse(f"{PREFIX}/", status_code=303), request, ctx, session)


@router.post("/logout")
async def logout(request: Request) -> Response:
    ctx = await context(request)
    await read_form(request, ctx)
    if ctx.session.role is not None:
        # Server-side too: a copy of this cookie (proxy log, shared computer) stops working now, everywhere.
        await ctx.gateway.revoked.revoke_nonce(revocation(ctx.session.sid), ctx.session.expires)
        log.info("console logout", extra={"role": ctx.session.role, "tenant": ctx.session.tenant})
    return with_cookie(RedirectResponse(f"{PREFIX}/login", status_code=303), request, ctx, Session())
