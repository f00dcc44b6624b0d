"""Helpers of the tenant-isolation suite: two tenants whose ids share a prefix (`acme`,
`acme-labs`) on one gateway, each with an API key, a console token, tool calls in the audit
log and quota counters; then what each may see.

Every console page and admin route is a row of `CONSOLE_CHECKS` / `ADMIN_CHECKS`, keyed by
(HTTP method, path) as the app declares it; the suite runs every row for both tenants and
fails when the app has a console or admin route without a row. Every MCP method is a row of
`MCP_METHODS`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi.routing import APIRoute
from mcp_gateway.app import create_app
from mcp_gateway.config_source import ConfigHolder
from mcp_gateway.proxy import build_backend
from mcp_gateway.runtime import Gateway
from mcp_gateway.store.memory import MemoryStore

from tests.console.support import csrf_of
from tests.gateway.support import ADMIN_TOKEN, GatewayProc, mcp_client

PROTOCOL = "2025-11-25"
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def routing(feature_url: str) -> dict[str, Any]:
    quota = {"quota": {"daily": 1000, "monthly": 20000}}
    upstreams = [{"name": "feat", "url": feature_url}]
    return {
        "tenants": [
            {"id": "acme", "displayName": "Acme Corporation", "limits": quota},
            {"id": "acme-labs", "displayName": "Labs Incorporated", "limits": quota},
        ],
        "profiles": [
            {"id": "acme-tools", "tenant": "acme", "upstreams": upstreams, "limits": quota},
            {"id": "acme-labs-main", "tenant": "acme-labs", "upstreams": upstreams, "limits": quota},
        ],
    }


def key_name(display: str) -> str:
    # From the display name: `key-of-acme` would be a part of `key-of-acme-labs`, a false alarm.
    return f"key for {display}"


@dataclass
class TenantData:
    """One tenant's things on the gateway, and a console client logged in with its console token."""

    id: str
    display: str
    profile: str
    api_key: str
    key_id: str
    key_prefix: str
    token: str  # the console token
    token_id: str
    console: httpx.Client

    @property
    def key_name(self) -> str:
        return key_name(self.display)

    def markers(self) -> list[str]:
        """Strings only this tenant's data contains (`acme` alone is a part of `acme-labs`)."""
        return [self.display, self.profile, self.key_name, self.key_id, self.key_prefix, self.token_id]


@dataclass
class World:
    gateway: GatewayProc
    tenants: dict[str, TenantData]

    def pair(self, me: str) -> tuple[TenantData, TenantData]:
        other = next(t for t in self.tenants if t != me)
        return self.tenants[me], self.tenants[other]

    def admin(self) -> httpx.Client:
        return self.gateway.admin()


def assert_clean(text: str, other: TenantData, where: str) -> None:
    leaked = [m for m in other.markers() if m and m in text]
    assert not leaked, f"{where} shows {other.id}'s data: {leaked}"


# --- setting the world up --------------------------------------------------------------------


def _console_login(base: str, token: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=20)
    csrf = csrf_of(client.get("/console/login").text)
    response = client.post("/console/login", data={"token": token, "csrf": csrf})
    assert response.status_code == 303, response.text
    return client


def _mint_console_token(base: str, tenant: str) -> str:
    operator = _console_login(base, ADMIN_TOKEN)
    try:
        csrf = csrf_of(operator.get(f"/console/keys?tenant={tenant}").text)
        created = operator.post("/console/console-tokens", data={"csrf": csrf, "tenant": tenant, "name": "console"})
    finally:
        operator.close()
    assert created.status_code == 200, created.text
    return created.text.split('id="secret">')[1].split("<")[0]


async def _call_tools(url: str, key: str) -> None:
    async with mcp_client(url, {"Authorization": f"Bearer {key}"}) as client:
        await client.call_tool("test_simple_text", {})


def _tenant(gateway: GatewayProc, tenant: str, display: str, profile: str) -> TenantData:
    with gateway.admin() as admin:
        created = admin.post(f"/admin/v1/tenants/{tenant}/keys", json={"name": key_name(display)})
        assert created.status_code == 201, created.text
        key = created.json()
        token = _mint_console_token(gateway.base, tenant)
        listed = admin.get(f"/admin/v1/tenants/{tenant}/keys").json()
    token_id = next(k["id"] for k in listed if k["profiles"] == ["@console"])
    asyncio.run(_call_tools(gateway.url(profile), key["key"]))  # audit records and quota counters
    console = _console_login(gateway.base, token)
    return TenantData(tenant, display, profile, key["key"], key["id"], key["prefix"], token, token_id, console)


def provision(gateway: GatewayProc) -> World:
    acme = _tenant(gateway, "acme", "Acme Corporation", "acme-tools")
    labs = _tenant(gateway, "acme-labs", "Labs Incorporated", "acme-labs-main")
    return World(gateway, {"acme": acme, "acme-labs": labs})


# --- console pages: (method, path) -> check(world, me, other) ------------------------------------

Check = Callable[[World, TenantData, TenantData], None]


def _page(me: TenantData, path: str) -> httpx.Response:
    return me.console.get(path)


def _csrf(me: TenantData) -> str:
    return csrf_of(me.console.get("/console/keys").text)


def _key_ids(world: World, tenant: str) -> list[str]:
    with world.admin() as admin:
        return [k["id"] for k in admin.get(f"/admin/v1/tenants/{tenant}/keys").json() if not k["revokedAt"]]


def console_overview(world: World, me: TenantData, other: TenantData) -> None:
    for path in ("/console", "/console/"):
        page = me.console.get(path, follow_redirects=True)
        assert page.status_code == 200 and me.profile in page.text
        assert_clean(page.text, other, f"GET {path}")


def console_keys(world: World, me: TenantData, other: TenantData) -> None:
    page = _page(me, "/console/keys")
    assert page.status_code == 200 and me.key_name in page.text
    assert_clean(page.text, other, "the keys page")
    assert _page(me, f"/console/keys?tenant={other.id}").status_code == 404


def console_create_key(world: World, me: TenantData, other: TenantData) -> None:
    before = _key_ids(world, other.id)
    csrf = _csrf(me)
    refused = me.console.post("/console/keys", data={"csrf": csrf, "tenant": other.id, "name": "x"})
    assert refused.status_code == 404
    foreign = me.console.post("/console/keys", data={"csrf": csrf, "profiles": other.profile, "name": "x"})
    assert foreign.status_code == 404
    assert _key_ids(world, other.id) == before


def console_create_token(world: World, me: TenantData, other: TenantData) -> None:
    before = _key_ids(world, other.id)
    refused = me.console.post("/console/console-tokens", data={"csrf": _csrf(me), "tenant": other.id})
    assert refused.status_code == 403
    assert _key_ids(world, other.id) == before


def console_revoke(world: World, me: TenantData, other: TenantData) -> None:
    csrf = _csrf(me)
    for key_id in (other.key_id, other.token_id):
        assert me.console.post(f"/console/keys/{key_id}/revoke", data={"csrf": csrf}).status_code == 404
    assert other.key_id in _key_ids(world, other.id) and other.token_id in _key_ids(world, other.id)


def console_profile(world: World, me: TenantData, other: TenantData) -> None:
    mine = _page(me, f"/console/profiles/{me.profile}")
    assert mine.status_code == 200 and f"tenant:{me.id}" in mine.text
    assert_clean(mine.text, other, "the profile page")
    assert f"tenant:{other.id}<" not in mine.text, "the quota table shows the other tenant's counter"
    assert _page(me, f"/console/profiles/{other.profile}").status_code == 404


def console_audit(world: World, me: TenantData, other: TenantData) -> None:
    page = _page(me, "/console/audit")
    assert page.status_code == 200 and f"key:{me.key_id}" in page.text
    assert_clean(page.text, other, "the audit page")
    assert _page(me, f"/console/audit?profile={other.profile}").status_code == 404
    by_caller = _page(me, f"/console/audit?caller=key:{other.key_id}")
    assert by_caller.status_code == 200
    echoed = by_caller.text.replace(f"key:{other.key_id}", "")  # the filter itself, shown back in its field
    assert_clean(echoed, other, "the audit page filtered by the other tenant's caller")


def console_login_pages(world: World, me: TenantData, other: TenantData) -> None:
    # Logged in: the login page sends the viewer home. Anonymous: every page shows nobody's data.
    assert me.console.get("/console/login").status_code == 303
    with httpx.Client(base_url=world.gateway.base, timeout=20) as anonymous:
        for path in (
            "/console/login",
            "/console/",
            "/console/keys",
            "/console/audit",
            f"/console/profiles/{me.profile}",
        ):
            page = anonymous.get(path, follow_redirects=True)
            assert page.status_code == 200 and 'id="token"' in page.text, path
            assert_clean(page.text, me, f"anonymous GET {path}")
        csrf = csrf_of(anonymous.get("/console/login").text)
        wrong = anonymous.post("/console/login", data={"csrf": csrf, "token": other.api_key})  # an API key
        assert wrong.status_code == 401
        assert_clean(wrong.text, other, "a refused login")


def console_logout(world: World, me: TenantData, other: TenantData) -> None:
    # A logout ends that one session: not the tenant's other sessions, not the other tenant's.
    session = _console_login(world.gateway.base, me.token)
    try:
        out = session.post("/console/logout", data={"csrf": csrf_of(session.get("/console/keys").text)})
        assert out.status_code == 303
        assert session.get("/console/keys").status_code == 303
    finally:
        session.close()
    assert me.console.get("/console/keys").status_code == 200
    assert other.console.get("/console/keys").status_code == 200


def console_static(world: World, me: TenantData, other: TenantData) -> None:
    script = me.console.get("/console/static/console.js")
    assert script.status_code == 200
    assert_clean(script.text, other, "a static file")
    assert me.console.get("/console/static/../keys.py").status_code == 404


def console_connections(world: World, me: TenantData, other: TenantData) -> None:
    """Connection pages (connections/web.py) ignore the console login: a tenant's session opens
    nothing of the other tenant's, and its profile answers like one that does not exist."""
    for path in (
        "/console/connect?link=forged",
        "/console/connect/callback?state=forged&code=x",
        "/console/connections?profile=no-such-profile",
        "/console/connections",
    ):
        page = _page(me, path)
        assert page.status_code in (400, 401, 404, 503), (path, page.status_code)
        assert_clean(page.text, other, path)
    # The other tenant's profile (named in the request, so in the page) answers like a missing one.
    theirs = _page(me, f"/console/connections?profile={other.profile}")
    missing = _page(me, "/console/connections?profile=no-such-profile").text
    assert theirs.status_code == 404 and theirs.text == missing.replace("no-such-profile", other.profile)
    form = {"csrf": _csrf(me), "profile": other.profile, "upstream": "x"}
    assert me.console.post("/console/connections/revoke", data=form).status_code == 403


CONSOLE_CHECKS: dict[tuple[str, str], Check] = {
    ("GET", "/console"): console_overview,
    ("GET", "/console/"): console_overview,
    ("GET", "/console/keys"): console_keys,
    ("POST", "/console/keys"): console_create_key,
    ("POST", "/console/console-tokens"): console_create_token,
    ("POST", "/console/keys/{key_id}/revoke"): console_revoke,
    ("GET", "/console/profiles/{profile_id}"): console_profile,
    ("GET", "/console/audit"): console_audit,
    ("GET", "/console/login"): console_login_pages,
    ("POST", "/console/login"): console_login_pages,
    ("POST", "/console/logout"): console_logout,
    ("GET", "/console/static/{name}"): console_static,
    ("GET", "/console/connect"): console_connections,
    ("GET", "/console/connect/callback"): console_connections,
    ("GET", "/console/connections"): console_connections,
    ("POST", "/console/connections/revoke"): console_connections,
}


# --- admin routes: the operator sees every tenant, but each tenant-scoped answer holds only that tenant's data --


def _get(world: World, path: str) -> Any:
    with world.admin() as admin:
        response = admin.get(path)
    assert response.status_code == 200, (path, response.text)
    return response.json()


def admin_tenants(world: World, me: TenantData, other: TenantData) -> None:
    listed = {t["id"]: t for t in _get(world, "/admin/v1/tenants")}
    assert listed[me.id]["profiles"] == [me.profile]
    one = _get(world, f"/admin/v1/tenants/{me.id}")
    assert one["profiles"] == [me.profile]
    assert_clean(str(one), other, f"GET /admin/v1/tenants/{me.id}")


def admin_profiles(world: World, me: TenantData, other: TenantData) -> None:
    assert [p["id"] for p in _get(world, f"/admin/v1/profiles?tenant={me.id}")] == [me.profile]
    profile = _get(world, f"/admin/v1/profiles/{me.profile}")
    assert profile["tenant"] == me.id
    assert_clean(str(profile), other, f"GET /admin/v1/profiles/{me.profile}")


def admin_profile_tools(world: World, me: TenantData, other: TenantData) -> None:
    tools = _get(world, f"/admin/v1/profiles/{me.profile}/tools")
    assert tools["tenant"] == me.id and tools["tools"]
    assert_clean(str(tools), other, "the profile's tools")


def admin_profile_tool_search(world: World, me: TenantData, other: TenantData) -> None:
    found = _get(world, f"/admin/v1/profiles/{me.profile}/tools/search?q=simple")
    assert found["profile"] == me.profile
    assert_clean(str(found), other, "the profile's tool search")


def admin_profile_tool_search_as(world: World, me: TenantData, other: TenantData) -> None:
    with world.admin() as admin:
        path = f"/admin/v1/profiles/{me.profile}/tools/search/as?q=simple"
        response = admin.post(path, json={"claims": {"sub": "someone"}})
    assert response.status_code == 200, response.text
    found = response.json()
    assert found["profile"] == me.profile and found["caller"] == "sub:someone"
    assert_clean(str(found), other, "the profile's tool search as a caller")


def admin_profile_tools_as(world: World, me: TenantData, other: TenantData) -> None:
    with world.admin() as admin:
        response = admin.post(f"/admin/v1/profiles/{me.profile}/tools/as", json={"claims": {"sub": "someone"}})
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["tenant"] == me.id and seen["tools"]
    assert_clean(str(seen), other, "the profile's tools as a caller")


def admin_create_key(world: World, me: TenantData, other: TenantData) -> None:
    with world.admin() as admin:
        foreign = admin.post(f"/admin/v1/tenants/{me.id}/keys", json={"profiles": [other.profile]})
    assert foreign.status_code == 422 and other.profile in foreign.text


def admin_keys(world: World, me: TenantData, other: TenantData) -> None:
    keys = _get(world, f"/admin/v1/tenants/{me.id}/keys")
    assert {k["tenant"] for k in keys} == {me.id} and me.key_id in [k["id"] for k in keys]
    assert_clean(str(keys), other, "the tenant's key list")


def admin_revoke(world: World, me: TenantData, other: TenantData) -> None:
    with world.admin() as admin:
        spare = admin.post(f"/admin/v1/tenants/{me.id}/keys", json={"name": "spare"}).json()
        revoked = admin.delete(f"/admin/v1/keys/{spare['id']}")
    assert revoked.status_code == 200 and revoked.json()["tenant"] == me.id
    assert other.key_id in _key_ids(world, other.id)


def admin_usage(world: World, me: TenantData, other: TenantData) -> None:
    usage = _get(world, f"/admin/v1/tenants/{me.id}/usage")
    scopes = {c["scope"] for c in usage["counters"]}
    assert f"tenant:{me.id}" in scopes
    assert all(s == f"tenant:{me.id}" or s.startswith(f"caller:{me.id}:") for s in scopes), scopes


def admin_audit(world: World, me: TenantData, other: TenantData) -> None:
    items = _get(world, f"/admin/v1/audit?tenant={me.id}")["items"]
    assert items and {i["tenant"] for i in items} == {me.id}
    by_profile = _get(world, f"/admin/v1/audit?profile={me.profile}")["items"]
    assert by_profile and {i["profile"] for i in by_profile} == {me.profile}


ADMIN_CHECKS: dict[tuple[str, str], Check] = {
    ("GET", "/admin/v1/tenants"): admin_tenants,
    ("GET", "/admin/v1/tenants/{tenant_id}"): admin_tenants,
    ("GET", "/admin/v1/profiles"): admin_profiles,
    ("GET", "/admin/v1/profiles/{profile_id}"): admin_profiles,
    ("GET", "/admin/v1/profiles/{profile_id}/tools"): admin_profile_tools,
    ("GET", "/admin/v1/profiles/{profile_id}/tools/search"): admin_profile_tool_search,
    ("POST", "/admin/v1/profiles/{profile_id}/tools/as"): admin_profile_tools_as,
    ("POST", "/admin/v1/profiles/{profile_id}/tools/search/as"): admin_profile_tool_search_as,
    ("POST", "/admin/v1/tenants/{tenant_id}/keys"): admin_create_key,
    ("GET", "/admin/v1/tenants/{tenant_id}/keys"): admin_keys,
    ("DELETE", "/admin/v1/keys/{key_id}"): admin_revoke,
    ("GET", "/admin/v1/tenants/{tenant_id}/usage"): admin_usage,
    ("GET", "/admin/v1/audit"): admin_audit,
}


# --- MCP methods ------------------------------------------------------------------------------

MCP_METHODS: dict[str, dict[str, Any] | None] = {
    "initialize": {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "iso", "version": "1"}},
    "ping": None,
    "tools/list": {},
    "tools/call": {"name": "test_simple_text", "arguments": {}},
    "resources/list": {},
    "resources/templates/list": {},
    "resources/read": {"uri": "test://static-text"},
    "resources/subscribe": {"uri": "test://watched-resource"},
    "resources/unsubscribe": {"uri": "test://watched-resource"},
    "prompts/list": {},
    "prompts/get": {"name": "test_simple_prompt"},
    "completion/complete": {
        "ref": {"type": "ref/prompt", "name": "test_prompt_with_arguments"},
        "argument": {"name": "arg1", "value": "par"},
    },
    "logging/setLevel": {"level": "info"},
    "server/discover": {},
    "subscriptions/listen": {},
    "notifications/initialized": None,
}


def mcp_post(url: str, key: str, method: str, session: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if not method.startswith("notifications/"):
        body["id"] = 1
    params = MCP_METHODS[method]
    if params is not None:
        body["params"] = params
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {key}", "MCP-Protocol-Version": PROTOCOL}
    if session:
        headers["Mcp-Session-Id"] = session
    return httpx.post(url, json=body, headers=headers, timeout=20)


def open_session(world: World, me: TenantData) -> str:
    response = mcp_post(world.gateway.url(me.profile), me.api_key, "initialize")
    assert response.status_code == 200, response.text
    session = response.headers["mcp-session-id"]
    assert mcp_post(world.gateway.url(me.profile), me.api_key, "notifications/initialized", session).status_code == 202
    return session


def refused(response: httpx.Response) -> bool:
    """A refusal that carries none of the profile's data."""
    return response.status_code in (401, 403, 404) and '"result"' not in response.text


# --- the app's own routes, for the coverage check ---------------------------------------------------


def _declared(routes: list[Any]) -> Iterator[tuple[str, set[str]]]:
    """(path, methods) of routes, looking into included routers (FastAPI keeps them wrapped)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route.path, route.methods
        elif hasattr(route, "effective_candidates"):
            for candidate in route.effective_candidates():
                yield candidate.path, set(candidate.methods or ())


def console_and_admin_routes() -> set[tuple[str, str]]:
    """(method, path) of every console and admin route the gateway's app declares."""
    gateway = Gateway(ConfigHolder(), MemoryStore(), build_backend, {})
    app = create_app(gateway)
    api = app.api  # type: ignore[attr-defined]
    found = {
        (method, path)
        for path, methods in _declared(api.routes)
        if path.startswith(("/console", "/admin"))
        for method in methods
    }
    assert ("GET", "/console/keys") in found and ("GET", "/admin/v1/audit") in found, "the route walk found nothing"
    return found
