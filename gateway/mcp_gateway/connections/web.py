"""The console's connection pages: connect (sign-in, then the third party's code + PKCE) and manage.

GET /console/connect?link=…   a caller's connect link (sealed: tenant, caller, profile, upstream).
    The user first signs in at the profile's identity provider with the gateway's sign-in client
    (`gateway.connections.userSignIn`); the token is checked exactly like an MCP caller's, and its
    caller must be the link's, so a link forwarded to someone else connects nothing.
GET /console/connect/callback  both providers' redirect URI. Its `state` is sealed with AES-GCM
    (stage, link, PKCE verifier, a browser nonce, expiry); the nonce must match this browser's
    cookie, so a state replayed in another browser is refused.
GET /console/connections, POST /console/connections/revoke  the signed-in user's connections.

Nothing is stored until the third party has issued a refresh token.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from typing import Any
from urllib.parse import quote

from fastapi import Request
from starlette.datastructures import Headers
from starlette.responses import RedirectResponse, Response

from mcp_gateway.auth import AuthFailure
from mcp_gateway.config import Profile, RoutingConfig
from mcp_gateway.connections import oauth
from mcp_gateway.connections.crypto import Unreadable
from mcp_gateway.connections.inject import connect_base
from mcp_gateway.connections.service import STATE_AAD, USER_AAD, Connections, ConnectionsDisabled, NotConnected
from mcp_gateway.connections.settings import ClientCredentials, OAuthConnection
from mcp_gateway.connections.store import ConnectionKey
from mcp_gateway.console.render import page
from mcp_gateway.console.web import PREFIX, Refused, router
from mcp_gateway.runtime import Gateway

log = logging.getLogger("mcp_gateway.connections")

NONCE_COOKIE = "mcp_connect"
USER_COOKIE = "mcp_connections"
STATE_SECONDS = 600
USER_SECONDS = 3600
NOTHING = "Nothing was stored"
AGAIN = "open the link from your MCP client again"
# How _exchange's refusals are counted (mcp_gateway_connection_connects_total).
_CONNECT_OUTCOMES = {400: "refused", 502: "unavailable", 503: "misconfigured"}


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def _redirect_uri(gateway: Gateway) -> str:
    return f"{connect_base(gateway)}{PREFIX}/connect/callback"


def _profile(config: RoutingConfig, profile_id: str) -> Profile:
    profile = config.profile(profile_id)
    if profile is None or profile.auth.oidc is None:
        raise Refused(404, f"profile {profile_id!r} not found (or it has no OIDC sign-in)")
    return profile


def _upstream_settings(profile: Profile, upstream: str) -> OAuthConnection:
    found = next((u.connection for u in profile.upstreams if u.name == upstream), None)
    if found is None:
        raise Refused(404, f"upstream {upstream!r} of profile {profile.id!r} has no connection (any more)")
    return found


def _cookie(response: Response, request: Request, name: str, value: str, seconds: int, path: str) -> Response:
    # Lax, not strict: the providers' redirects back to the callback are cross-site navigations.
    secure = request.url.scheme == "https"
    response.set_cookie(name, value, max_age=seconds, path=path, httponly=True, samesite="lax", secure=secure)
    return response


async def _sign_in(request: Request, gateway: Gateway, profile: Profile, link: str | None) -> Response:
    """Redirect to the profile's identity provider; the callback continues with `link` (or the list)."""
    sign_in = gateway.holder.config.gateway.connections.user_sign_in
    if sign_in is None or profile.auth.oidc is None:
        raise Refused(503, "connections are not set up on this gateway (gateway.connections.userSignIn is missing)")
    endpoints = await _endpoints(gateway.connections, None, profile.auth.oidc.issuer)
    verifier, challenge = oauth.pkce_pair()
    nonce = secrets.token_urlsafe(18)
    state = gateway.connections.seal(
        {"s": "in", "l": link, "p": profile.id, "v": verifier, "n": nonce, "e": time.time() + STATE_SECONDS}, STATE_AAD
    )
    url = oauth.authorization_url(
        endpoints, sign_in.client_id, _redirect_uri(gateway), sign_in.scopes, state, challenge
    )
    response = RedirectResponse(url, status_code=303)
    return _cookie(response, request, NONCE_COOKIE, nonce, STATE_SECONDS, f"{PREFIX}/connect")


async def _endpoints(connections: Connections, settings: OAuthConnection | None, issuer: str | None) -> oauth.Endpoints:
    try:
        return await connections.endpoints(settings, issuer)
    except oauth.ProviderUnavailable as exc:
        raise Refused(502, f"the provider could not be reached ({exc}). {NOTHING}; try again later.") from None


@router.get("/connect")
async def connect(request: Request, link: str = "") -> Response:
    gateway = _gateway(request)
    key = _open_link(gateway.connections, link)
    return await _sign_in(request, gateway, _profile(gateway.holder.config, key.profile), link)


def _open_link(connections: Connections, link: str) -> ConnectionKey:
    try:
        return connections.open_link(link)
    except ConnectionsDisabled as exc:
        raise Refused(503, str(exc)) from None
    except (Unreadable, ValueError, KeyError):
        raise Refused(400, f"this connect link is invalid or expired; {AGAIN}") from None


@router.get("/connect/callback")
async def callback(request: Request, state: str = "", code: str = "", error: str = "") -> Response:
    gateway = _gateway(request)
    try:
        body = gateway.connections.open(state, STATE_AAD)
    except (Unreadable, ValueError, ConnectionsDisabled):
        log.info("connect callback refused: invalid state")
        raise Refused(400, f"the connection state is invalid, tampered with or expired. {NOTHING}; {AGAIN}.") from None
    sent = request.cookies.get(NONCE_COOKIE, "")
    if not hmac.compare_digest(sent.encode(), str(body.get("n", "")).encode()):
        log.info("connect callback refused: state from another browser")
        raise Refused(400, f"this sign-in was started in another browser (or its cookie expired). {NOTHING}; {AGAIN}.")
    if error:
        raise Refused(400, f"the provider did not authorize the request ({error[:64]}). {NOTHING}.")
    if not code:
        raise Refused(400, f"the provider sent no authorization code. {NOTHING}; {AGAIN}.")
    if body.get("s") == "in":
        return await _signed_in(request, gateway, body, code)
    return await _connected(request, gateway, body, code)


async def _signed_in(request: Request, gateway: Gateway, body: dict[str, Any], code: str) -> Response:
    """Who signed in, checked like an MCP caller; then on to the third party (or the list)."""
    profile = _profile(gateway.holder.config, str(body.get("p")))
    sign_in = gateway.holder.config.gateway.connections.user_sign_in
    assert profile.auth.oidc is not None
    if sign_in is None:
        raise Refused(503, "connections are not set up on this gateway (gateway.connections.userSignIn is missing)")
    endpoints = await _endpoints(gateway.connections, None, profile.auth.oidc.issuer)
    tokens = await _exchange(gateway, endpoints, sign_in, code, str(body.get("v")))
    try:
        headers = Headers({"authorization": f"Bearer {tokens.access_token}"})
        principal = await gateway.authenticator.authenticate(profile, headers, "")
    except AuthFailure as failure:
        raise Refused(
            403, f"your sign-in does not give access to profile {profile.id!r} ({failure.message})."
        ) from None
    user = {
        "t": principal.tenant,
        "c": principal.caller,
        "x": secrets.token_urlsafe(18),
        "e": time.time() + USER_SECONDS,
    }
    sealed_user = gateway.connections.seal(user, USER_AAD)
    link = body.get("l")
    if not isinstance(link, str):
        response: Response = RedirectResponse(f"{PREFIX}/connections", status_code=303)
        return _cookie(response, request, USER_COOKIE, sealed_user, USER_SECONDS, PREFIX)
    key = _open_link(gateway.connections, link)
    if (principal.tenant, principal.caller) != (key.tenant, key.caller):
        log.warning("connect link of one caller opened by another; refused", extra={"tenant": key.tenant})
        raise Refused(
            403,
            "this connect link was made for another user; nothing was connected. "
            "Ask your own MCP client for your link.",
        )
    settings = _upstream_settings(profile, key.upstream)
    upstream_endpoints = await _endpoints(gateway.connections, settings, None)
    verifier, challenge = oauth.pkce_pair()
    state = gateway.connections.seal(
        {"s": "up", "l": link, "v": verifier, "n": body.get("n"), "e": time.time() + STATE_SECONDS}, STATE_AAD
    )
    url = oauth.authorization_url(
        upstream_endpoints, settings.client_id, _redirect_uri(gateway), settings.scopes, state, challenge
    )
    response = RedirectResponse(url, status_code=303)
    return _cookie(response, request, USER_COOKIE, sealed_user, USER_SECONDS, PREFIX)


async def _connected(request: Request, gateway: Gateway, body: dict[str, Any], code: str) -> Response:
    key = _open_link(gateway.connections, str(body.get("l")))
    profile = _profile(gateway.holder.config, key.profile)
    settings = _upstream_settings(profile, key.upstream)
    endpoints = await _endpoints(gateway.connections, settings, None)
    try:
        tokens = await _exchange(gateway, endpoints, settings, code, str(body.get("v")))
        await gateway.connections.save(key, tokens)
    except Refused as refused:
        gateway.connections.counted("connect", key, _CONNECT_OUTCOMES.get(refused.status, "error"))
        raise
    except NotConnected as exc:
        gateway.connections.counted("connect", key, "no_refresh_token")
        raise Refused(502, f"{exc}. {NOTHING}.") from None
    gateway.connections.counted("connect", key, "ok")
    log.info("connection made", extra={"tenant": key.tenant, "profile": key.profile, "upstream": key.upstream})
    name = settings.display_name or key.upstream
    response = page("connected.html", 200, viewer=None, name=name, profile=key.profile)
    response.delete_cookie(NONCE_COOKIE, path=f"{PREFIX}/connect")
    return response


async def _exchange(
    gateway: Gateway, endpoints: oauth.Endpoints, creds: ClientCredentials, code: str, verifier: str
) -> oauth.TokenSet:
    try:
        client = await gateway.connections.client(creds)
        return await oauth.exchange_code(
            gateway.connections.http, endpoints.token, client, code, verifier, _redirect_uri(gateway)
        )
    except oauth.GrantRefused as refused:
        log.info("authorization code refused: %s", refused.error)
        raise Refused(400, f"the provider refused the authorization code ({refused}). {NOTHING}; {AGAIN}.") from None
    except oauth.ProviderUnavailable as exc:
        raise Refused(502, f"the provider could not be reached ({exc}). {NOTHING}; try again later.") from None
    except oauth.ClientSecretMissing as exc:
        log.error("connections: %s", exc)
        raise Refused(503, "the gateway's client secret for this provider is missing; tell the operator.") from None


# -- manage ------------------------------------------------------------------------------


def _user(request: Request, gateway: Gateway) -> dict[str, Any] | None:
    try:
        return gateway.connections.open(request.cookies.get(USER_COOKIE, ""), USER_AAD)
    except (Unreadable, ValueError, ConnectionsDisabled):
        return None


@router.get("/connections")
async def connections_page(request: Request, profile: str = "") -> Response:
    gateway = _gateway(request)
    user = _user(request, gateway)
    if user is None:
        if not profile:
            raise Refused(401, "sign in first: open /console/connections?profile=<your profile id>")
        return await _sign_in(request, gateway, _profile(gateway.holder.config, profile), None)
    config = gateway.holder.config
    rows = []
    for row in await gateway.connections.of_caller(str(user["t"]), str(user["c"])):
        found = config.profile(row.key.profile)
        settings = next((u.connection for u in found.upstreams if u.name == row.key.upstream), None) if found else None
        name = (settings.display_name if settings else None) or row.key.upstream
        rows.append({"profile": row.key.profile, "upstream": row.key.upstream, "name": name, "row": row})
    return page("connections.html", 200, viewer=None, rows=rows, csrf=user["x"], caller=user["c"])


@router.post("/connections/revoke")
async def revoke(request: Request) -> Response:
    gateway = _gateway(request)
    user = _user(request, gateway)
    expired = "the form expired or did not come from this console; reload the page and try again"
    if user is None:  # refused unread, like every console form without a session
        raise Refused(403, expired)
    form = await request.form(max_files=0, max_fields=10)
    if not hmac.compare_digest(str(form.get("csrf", "")).encode(), str(user["x"]).encode()):
        raise Refused(403, expired)
    key = ConnectionKey(str(user["t"]), str(user["c"]), str(form.get("profile", "")), str(form.get("upstream", "")))
    profile = gateway.holder.config.profile(key.profile)
    settings = next((u.connection for u in profile.upstreams if u.name == key.upstream), None) if profile else None
    if not await gateway.connections.revoke(key, settings):
        raise Refused(404, "connection not found")
    gateway.connections.counted("revoke", key)
    log.info("connection revoked", extra={"tenant": key.tenant, "profile": key.profile, "upstream": key.upstream})
    return RedirectResponse(f"{PREFIX}/connections?revoked={quote(key.upstream)}", status_code=303)
