"""What every console page shares: the router, the per-request context, cookies, forms, errors.

Every response carries the security headers of render.py. Every form POST
carries the session's CSRF token. Anything scoped to a tenant is looked up
through the viewer, so a tenant editing a URL to another tenant's profile,
key or audit filter gets the same 404 as for something that does not exist.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response

from mcp_gateway.config import RoutingConfig
from mcp_gateway.console import access
from mcp_gateway.console.render import page, secure
from mcp_gateway.console.session import COOKIE, Session, SessionCodec
from mcp_gateway.runtime import Gateway

log = logging.getLogger("mcp_gateway.console")

PREFIX = "/console"


class LoginNeeded(Exception):
    pass


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def not_found(what: str) -> Refused:
    return Refused(404, f"{what} not found (or not visible to this login)")


class ConsoleRoute(APIRoute):
    """Turns the console's refusals into pages and adds the security headers to every response."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def wrapped(request: Request) -> Response:
            try:
                response = await handler(request)
            except LoginNeeded:
                response = RedirectResponse(f"{PREFIX}/login", status_code=303)
            except Refused as exc:
                response = error_page(request, exc.status, exc.message)
            except RequestValidationError as exc:
                fields = ", ".join(str(e["loc"][-1]) for e in exc.errors())
                response = error_page(request, 400, f"invalid value for: {fields}; fix the address and try again")
            except HTTPException as exc:
                if not 400 <= exc.status_code < 500:
                    raise
                # The client's mistake (an unparsable form, too many fields): its own 4xx, nothing logged.
                response = error_page(request, exc.status_code, f"bad request: {exc.detail}")
            except Exception:
                log.exception("console page failed: %s", request.url.path)
                response = error_page(request, 500, "internal error; see the gateway logs")
            return secure(response)

        return wrapped


def error_page(request: Request, status: int, message: str) -> Response:
    """An error page, with the navigation when the request came from a logged-in viewer."""
    ctx: Ctx | None = getattr(request.state, "console_ctx", None)
    if ctx is None:
        return page("error.html", status, message=message, viewer=None)
    return render_page(ctx, "error.html", status, message=message)


router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=ConsoleRoute)


@dataclass
class Ctx:
    gateway: Gateway
    codec: SessionCodec
    session: Session
    viewer: access.Viewer | None
    fresh: bool  # the session is new and must be sent as a cookie

    @property
    def config(self) -> RoutingConfig:
        return self.gateway.holder.config

    def who(self) -> access.Viewer:
        if self.viewer is None:
            raise LoginNeeded
        return self.viewer


async def _codec(request: Request) -> SessionCodec:
    state = request.app.state
    codec: SessionCodec | None = getattr(state, "console_codec", None)
    if codec is None:
        gateway: Gateway = state.gateway
        codec = state.console_codec = SessionCodec(gateway.console_keys)
    return codec


async def context(request: Request) -> Ctx:
    gateway: Gateway = request.app.state.gateway
    codec = await _codec(request)
    session = codec.decode(request.cookies.get(COOKIE))
    fresh = session is None
    session = session or Session()
    ctx = Ctx(gateway, codec, session, await access.viewer_of(gateway, codec, session), fresh)
    request.state.console_ctx = ctx
    return ctx


def with_cookie(response: Response, request: Request, ctx: Ctx, session: Session) -> Response:
    response.set_cookie(
        COOKIE,
        ctx.codec.encode(session),
        max_age=session.max_age,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


FORM_EXPIRED = "the form expired or did not come from this console; reload the page and try again"
# Console forms have a handful of short fields and no uploads.
MAX_FORM_FIELDS = 50


async def read_form(request: Request, ctx: Ctx) -> FormData:
    """The form of a POST carrying this session's CSRF token; a POST without a session is refused unread."""
    if ctx.fresh:
        raise Refused(403, FORM_EXPIRED)
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    sent = str(form.get("csrf", ""))
    if not hmac.compare_digest(sent.encode(), ctx.session.csrf.encode()):
        raise Refused(403, FORM_EXPIRED)
    return form


def base_url(request: Request, gateway: Gateway) -> str:
    return gateway.public_base(str(request.base_url))


def render_page(ctx: Ctx, template: str, status: int = 200, **values: Any) -> Response:
    return page(template, status, viewer=ctx.viewer, csrf=ctx.session.csrf, **values)


def tenant_for(ctx: Ctx, viewer: access.Viewer, requested: str | None) -> str:
    """The tenant a page is about: the tenant login's own, or the operator's choice (default: the first)."""
    tenants = viewer.tenants(ctx.config)
    if requested:
        if not viewer.sees(requested) or ctx.config.tenant(requested) is None:
            raise not_found(f"tenant {requested!r}")
        return requested
    if not tenants:
        raise not_found("any tenant")
    return tenants[0].id
