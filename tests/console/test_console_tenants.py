"""Tenant logins see their own tenant only, however they edit URLs or forms."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from tests.console.conftest import NewPage
from tests.console.support import Stack, csrf_of, http_login, login, shot
from tests.gateway.support import ADMIN_TOKEN, mcp_client

JSON_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2025-11-25",
}


def admin_key(stack: Stack, tenant: str) -> dict[str, Any]:
    with stack.gateway.admin() as admin:
        response = admin.post(f"/admin/v1/tenants/{tenant}/keys", json={"name": f"{tenant}-bot"})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def list_status(stack: Stack, profile: str, key: str) -> int:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {**JSON_HEADERS, "Authorization": f"Bearer {key}"}
    return httpx.post(stack.gateway.url(profile), json=body, headers=headers, timeout=10).status_code


async def call_echo(stack: Stack, profile: str, key: str, text: str) -> None:
    async with mcp_client(stack.gateway.url(profile), {"Authorization": f"Bearer {key}"}) as client:
        assert not (await client.call_tool("echo", {"text": text})).is_error


async def test_tenant_login_sees_only_its_own_tenant(stack: Stack, new_page: NewPage) -> None:
    acme_key, globex_key = admin_key(stack, "acme"), admin_key(stack, "globex")
    await call_echo(stack, "acme-tools", acme_key["key"], "from acme")
    await call_echo(stack, "globex-main", globex_key["key"], "from globex")

    # The operator mints a console token for acme.
    operator = (await new_page()).page
    await login(operator, stack)
    await operator.goto(stack.console("/keys?tenant=acme"))
    await operator.fill("#ct-name", "alice")
    await operator.click("#create-console-token-submit")
    token = (await operator.locator("#secret").inner_text()).strip()
    assert await operator.locator("#client-config").count() == 0
    await shot(operator, "console-token-created")

    # A console token opens no MCP endpoint; an API key does not open the console.
    assert list_status(stack, "acme-tools", token) == 403
    refused = (await new_page()).page
    await refused.goto(stack.console("/login"))
    await refused.fill("#token", acme_key["key"])
    await refused.click("#login-submit")
    assert "not valid" in await refused.locator("#login-error").inner_text()

    watched = await new_page()
    tenant = watched.page
    await login(tenant, stack, token)
    assert await tenant.locator(".who .badge").inner_text() == "tenant acme"
    tenants = await tenant.locator("#tenants tr[data-tenant]").evaluate_all("r => r.map(x => x.dataset.tenant)")
    profiles = await tenant.locator("#profiles tr[data-profile]").evaluate_all("r => r.map(x => x.dataset.profile)")
    assert tenants == ["acme"]
    assert sorted(profiles) == ["acme-legacy", "acme-tools"]
    await shot(tenant, "tenant-overview")

    # Editing URLs to reach globex's profile, keys or audit gives "not found".
    for path in ("/profiles/globex-main", "/keys?tenant=globex", "/audit?profile=globex-main"):
        response = await tenant.goto(stack.console(path))
        assert response is not None and response.status == 404, path
        assert "not found" in await tenant.locator("#error-message").inner_text()
        assert "globex-bot" not in await tenant.content()
    await shot(tenant, "tenant-not-found")

    # Its own keys, without the console-token section; never globex's keys.
    await tenant.goto(stack.console("/keys"))
    assert await tenant.locator(f'#keys tr[data-prefix="{acme_key["prefix"]}"]').count() == 1
    assert globex_key["prefix"] not in await tenant.content()
    assert await tenant.locator("#console-tokens").count() == 0
    await shot(tenant, "tenant-keys")

    # The audit log holds only acme's records, whatever the filters say.
    await tenant.goto(stack.console("/audit"))
    tenants_seen = await tenant.locator("#audit tr[data-audit-id] td:nth-child(3)").all_inner_texts()
    assert tenants_seen == ["acme"]
    await shot(tenant, "tenant-audit")
    await tenant.goto(stack.console("/audit?caller=key:" + globex_key["id"]))
    assert await tenant.locator("#audit tr[data-audit-id]").count() == 0

    # Forms posted by hand with the tenant's own valid CSRF token cannot touch globex either.
    csrf = csrf_of(await tenant.content())
    revoke = await tenant.request.post(stack.console(f"/keys/{globex_key['id']}/revoke"), form={"csrf": csrf})
    assert revoke.status == 404
    assert list_status(stack, "globex-main", globex_key["key"]) == 200
    mint = await tenant.request.post(stack.console("/keys"), form={"csrf": csrf, "tenant": "globex"})
    assert mint.status == 404
    foreign = await tenant.request.post(
        stack.console("/keys"), form={"csrf": csrf, "tenant": "acme", "profiles": "globex-main"}
    )
    assert foreign.status == 404
    token_mint = await tenant.request.post(stack.console("/console-tokens"), form={"csrf": csrf, "tenant": "acme"})
    assert token_mint.status == 403
    with stack.gateway.admin() as admin:
        assert len(admin.get("/admin/v1/tenants/globex/keys").json()) == 1

    # The operator revokes the console token: the tenant's very next request is logged out.
    await operator.goto(stack.console("/keys?tenant=acme"))
    await operator.locator("#console-tokens form.revoke button").click()
    await operator.wait_for_url(stack.console("/keys?tenant=acme"))
    await tenant.goto(stack.console("/"))
    assert tenant.url == stack.console("/login")
    assert watched.csp_violations() == []


def test_tenant_session_cannot_be_turned_into_another_tenant(stack: Stack) -> None:
    """A globex console login stays globex: its signed cookie cannot be edited into anything else."""
    operator = http_login(stack, ADMIN_TOKEN)
    keys = operator.get("/console/keys?tenant=globex")
    created = operator.post("/console/console-tokens", data={"csrf": csrf_of(keys.text), "tenant": "globex"})
    assert created.status_code == 200
    token = created.text.split('id="secret">')[1].split("<")[0]
    operator.close()

    globex = http_login(stack, token)
    try:
        overview = globex.get("/console/")
        assert 'data-profile="globex-main"' in overview.text and "acme-tools" not in overview.text
        cookie = globex.cookies.get("mcp_console")
        assert cookie
        payload, signature = cookie.rsplit(".", 1)
        session = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        assert session["tenant"] == "globex"
        forged = base64.urlsafe_b64encode(json.dumps({**session, "tenant": "acme"}).encode()).decode().rstrip("=")
        globex.cookies.clear()
        globex.cookies.set("mcp_console", f"{forged}.{signature}", domain="127.0.0.1", path="/console")
        response = globex.get("/console/profiles/globex-main")
        assert response.status_code == 303 and response.headers["location"] == "/console/login"
    finally:
        globex.close()
