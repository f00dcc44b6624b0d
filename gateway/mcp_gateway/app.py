"""The FastAPI application: profile endpoints, health, metrics, OAuth metadata, admin API."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from mcp_adapter.http_guard import GuardSettings, HttpGuard
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_gateway import admin, console
from mcp_gateway.body_limit import limited
from mcp_gateway.front import PROFILE_PATH, McpFront
from mcp_gateway.runtime import Gateway, StartupError

log = logging.getLogger("mcp_gateway.app")


class Source(Protocol):
    def start(self) -> None: ...
    async def stop(self) -> None: ...


# Served on the public port to admin-token holders only: metrics name tenants, profiles and tools,
# and the OpenAPI document maps the admin API. (The interactive /docs and /redoc pages are off:
# a browser cannot send the token.)
ADMIN_ONLY_PATHS = frozenset({"/metrics", "/openapi.json"})


def create_app(gateway: Gateway, sources: list[Source] | None = None, *, public_metrics: bool = True) -> ASGIApp:
    """The gateway's app; `public_metrics=False` leaves `/metrics` to `metrics_app` on another port.

    On the public port `/metrics` (when served there) and `/openapi.json` need the admin token.
    """

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            await gateway.start()
        except StartupError as exc:
            log.error("cannot start: %s", exc)
            raise SystemExit(2) from None
        for source in sources or []:
            source.start()
        try:
            yield
        finally:
            for source in sources or []:
                await source.stop()
            await gateway.close()

    api = FastAPI(
        title="mcp-gateway",
        description="Profile-scoped MCP endpoints live at /{profile_id}/mcp (streamable HTTP, not in this schema).",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    api.state.gateway = gateway
    api.include_router(admin.router)
    api.include_router(console.router)
    _add_ops_routes(api, gateway)
    if public_metrics:
        api.add_api_route("/metrics", _metrics_endpoint(gateway), methods=["GET"], tags=["ops"])
    _add_error_handlers(api)
    admin_only = ADMIN_ONLY_PATHS if public_metrics else ADMIN_ONLY_PATHS - {"/metrics"}
    return _Dispatch(api, McpFront(gateway), admin_only)


def _metrics_endpoint(gateway: Gateway) -> Callable[[Request], Awaitable[Response]]:
    async def metrics(request: Request) -> Response:
        gateway.metrics.audit_pending.set(gateway.audit.pending)
        gateway.metrics.notification_streams.set(gateway.streams.open_streams)
        gateway.metrics.server_requests_waiting.set(gateway.relay.open_channels)
        return Response(generate_latest(gateway.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return metrics


def metrics_app(gateway: Gateway) -> ASGIApp:
    """`/metrics` alone, for a separate (e.g. cluster-internal) port: `serve --metrics-port`."""
    return Starlette(routes=[Route("/metrics", _metrics_endpoint(gateway))])


async def _store_ready(gateway: Gateway) -> bool:
    ready = await gateway.store.ready()
    gateway.metrics.store_up.set(1 if ready else 0)
    return ready


def _add_ops_routes(api: FastAPI, gateway: Gateway) -> None:
    @api.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz", tags=["ops"])
    async def readyz(request: Request) -> JSONResponse:
        reason = ""
        if gateway.holder.generation == 0:
            reason = "no routing config loaded yet"
        elif not gateway.started:
            reason = "starting"
        elif not await _store_ready(gateway):
            reason = "state store unavailable"
        body: dict[str, Any] = {"status": "not ready" if reason else "ready"}
        if reason:
            body["reason"] = reason
        body["configGeneration"] = gateway.holder.generation
        # Upstream health is detail, not the gateway's readiness: one down upstream must not take replicas out.
        # Error texts (which may name internal hosts) only with the admin token.
        admin_view = admin.admin_refusal(gateway, request.headers.get("authorization", "")) is None
        body["upstreams"] = gateway.backends.health(errors=admin_view)
        return JSONResponse(body, status_code=503 if reason else 200)

    @api.get("/.well-known/oauth-protected-resource/{profile_id}/mcp", tags=["oauth"])
    async def protected_resource(profile_id: str, request: Request) -> dict[str, Any]:
        """RFC 9728 metadata for an OIDC-protected profile."""
        profile = gateway.holder.config.profile(profile_id)
        if profile is None or "oidc" not in profile.auth.accepted or profile.auth.oidc is None:
            raise HTTPException(404, f"profile {profile_id!r} is not an OAuth-protected resource")
        base = gateway.public_base(str(request.base_url))
        return {
            "resource": f"{base}/{profile_id}/mcp",
            "authorization_servers": [profile.auth.oidc.issuer],
            "scopes_supported": profile.auth.oidc.required_scopes,
            "bearer_methods_supported": ["header"],
        }


def _add_error_handlers(api: FastAPI) -> None:
    @api.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error in admin/ops route", exc_info=exc)
        return JSONResponse({"detail": "internal error; see gateway logs"}, status_code=500)

    @api.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"detail": problems}, status_code=422)


# The adapter's guard, used only to trim header values (RFC 9110 optional whitespace, which
# uvicorn's httptools parser keeps): the front checks Origin itself, per routing config.
TRIM_ONLY = GuardSettings(allowed_hosts=None, allowed_origins=("*",))


class _Dispatch:
    """Send `/{profile_id}/mcp` to the MCP front, everything else to FastAPI.

    Admin API requests (and the admin-only ops paths) are authenticated here, before FastAPI reads their body: a request
    without the admin token gets 401 whatever it sends (FastAPI would answer an unparsable
    body with 400 or 422 first, telling an unauthenticated caller about the API's shapes).
    Admin and console bodies are then capped (body_limit.py) before any parser buffers them.
    """

    def __init__(self, api: FastAPI, front: McpFront, admin_only: frozenset[str]) -> None:
        self.api = api
        self.front = front
        self.admin_only = admin_only
        self.guarded_front = HttpGuard(self._front, TRIM_ONLY)

    async def _front(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.front(scope, receive, send, scope["mcp_gateway.profile"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            match = PROFILE_PATH.match(scope["path"])
            if match:
                await self.guarded_front({**scope, "mcp_gateway.profile": match.group(1)}, receive, send)
                return
            if scope["path"].startswith(admin.router.prefix + "/") or scope["path"] in self.admin_only:
                authorization = Headers(scope=scope).get("authorization", "")
                refusal = admin.admin_refusal(self.front.gw, authorization)
                if refusal is not None:
                    body = {"detail": refusal.detail}
                    await JSONResponse(body, refusal.status_code, headers=refusal.headers)(scope, receive, send)
                    return
            if scope["path"].startswith((admin.router.prefix + "/", console.router.prefix)):
                limit = self.front.gw.holder.config.gateway.max_admin_request_bytes
                await limited(self.api, limit, scope, receive, send)
                return
        await self.api(scope, receive, send)
