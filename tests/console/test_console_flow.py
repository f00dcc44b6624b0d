"""The operator's path through the console, in headless Chromium against a real gateway,
real PostgreSQL and real upstreams: log in, see a profile's tools, mint a key and use it
from a real MCP client, revoke it and see the client refused, find the call in the audit log."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.console.conftest import NewPage
from tests.console.servers.hostile_server import SCRIPT_DESCRIPTION
from tests.console.support import Stack, login, shot
from tests.gateway.support import ADMIN_TOKEN, mcp_client

JSON_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2025-11-25",
}


def tools_list_status(stack: Stack, key: str) -> int:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {**JSON_HEADERS, "Authorization": f"Bearer {key}"}
    return httpx.post(stack.gateway.url("acme-tools"), json=body, headers=headers, timeout=10).status_code


async def test_operator_mints_uses_revokes_and_audits_a_key(stack: Stack, new_page: NewPage) -> None:
    watched = await new_page()
    page = watched.page
    await page.goto(stack.console("/"))
    await shot(page, "login")
    await login(page, stack)

    # Overview: tenants, profiles with endpoint URLs, upstream health.
    assert await page.locator("#tenants tr[data-tenant]").count() == 2
    acme_row = page.locator('#profiles tr[data-profile="acme-tools"]')
    assert await acme_row.locator(".endpoint").inner_text() == stack.gateway.url("acme-tools")
    assert await acme_row.locator(".health.up").count() == 2
    legacy_row = page.locator('#profiles tr[data-profile="acme-legacy"]')
    assert await legacy_row.locator(".health.down").count() == 1
    await shot(page, "overview")

    # Profile detail: every tool with its policy mark; hostile descriptions shown as text.
    await acme_row.locator("a").first.click()
    await page.wait_for_url(stack.console("/profiles/acme-tools"))
    assert await page.locator('#tools tr[data-tool="echo"] .mark.allow').count() == 1
    assert await page.locator('#tools tr[data-tool="slow"] .mark.deny').count() == 1
    assert await page.locator('#tools tr[data-tool="protocol_error"] .mark.deny').count() == 1
    weather = page.locator('#tools tr[data-tool="weather"] td.description')
    assert await weather.inner_text() == SCRIPT_DESCRIPTION
    assert "&lt;script&gt;" in await page.content()
    assert await page.evaluate("window.__pwned === undefined")
    assert await page.locator("#limits").inner_text() != ""
    await shot(page, "profile")

    # Keys: create one for acme-tools; the secret is shown once with a copy button and a client config.
    await page.click('a[data-nav="keys"]')
    await page.wait_for_url(stack.console("/keys"))
    await page.fill("#key-name", "e2e-client")
    await page.fill("#key-labels", "team=web, env=e2e")
    await page.check('input[name="profiles"][value="acme-tools"]')
    await shot(page, "keys-empty")
    await page.click("#create-key-submit")
    secret = (await page.locator("#secret").inner_text()).strip()
    assert secret.startswith("mcpk_")
    assert secret not in page.url
    await page.click("#copy-secret")
    await page.locator("#copy-secret.done").wait_for()
    assert await page.evaluate("navigator.clipboard.readText()") == secret
    config = json.loads(await page.locator("#client-config").inner_text())
    server = config["mcpServers"]["acme-tools"]
    assert server["url"] == stack.gateway.url("acme-tools")
    assert server["headers"]["Authorization"] == f"Bearer {secret}"
    await shot(page, "key-created")

    # The key works from a real MCP client, with the policy applied.
    async with mcp_client(server["url"], server["headers"]) as client:
        listed = {tool.name for tool in (await client.list_tools()).tools}
        assert {"echo", "weather"} <= listed and "slow" not in listed
        result = await client.call_tool("echo", {"text": "hello from the console test"})
        assert not result.is_error

    # Revoke it in the console; the client is refused from then on.
    await page.goto(stack.console("/keys?tenant=acme"))
    prefix = secret.split("_")[1]
    row = page.locator(f'#keys tr[data-prefix="{prefix}"]')
    assert await row.locator(".status").inner_text() == "active"
    assert (await row.locator(".labels").inner_text()).split() == ["env=e2e", "team=web"]  # policy rules read them
    await row.locator("form.revoke button").click()
    await page.wait_for_url(stack.console("/keys?tenant=acme"))
    assert await page.locator(f'#keys tr[data-prefix="{prefix}"] .status').inner_text() == "revoked"
    await shot(page, "keys-revoked")
    assert tools_list_status(stack, secret) == 401
    with pytest.raises(Exception):  # noqa: B017 - any refusal surfaced by the SDK will do; the 401 is asserted above
        async with mcp_client(server["url"], server["headers"]) as client:
            await client.list_tools()

    # The call is in the audit log, found by each filter, under the key's caller id.
    await page.click('a[data-nav="audit"]')
    await page.select_option("#filter-profile", "acme-tools")
    await page.fill("#filter-tool", "echo")
    await page.select_option("#filter-outcome", "ok")
    await page.click("#filter-submit")
    await page.wait_for_url("**/console/audit?**")
    rows = page.locator('#audit tr[data-tool="echo"]')
    assert await rows.count() == 1
    caller = (await rows.locator("code.caller").inner_text()).strip()
    assert await rows.locator("td").nth(4).locator(".muted").inner_text() == "e2e-client"
    assert caller.startswith("key:")
    await page.fill("#filter-caller", caller)
    await page.click("#filter-submit")
    assert await page.locator('#audit tr[data-tool="echo"]').count() == 1
    await shot(page, "audit")
    await page.select_option("#filter-outcome", "error")
    await page.click("#filter-submit")
    assert await page.locator("#audit tr[data-audit-id]").count() == 0

    # The profile's usage chart counts the call.
    await page.goto(stack.console("/profiles/acme-tools?window=1h"))
    assert (await page.locator("#call-total").inner_text()).startswith("1 call in the last 1h")
    assert await page.locator("#usage-chart svg rect").count() > 0
    await shot(page, "profile-usage")

    # A malformed query is a clear 400 page, not a stack trace.
    bad = await page.goto(stack.console("/audit?before=yesterday"))
    assert bad is not None and bad.status == 400
    assert "before" in await page.locator("#error-message").inner_text()

    # Logging out ends the session.
    await page.goto(stack.console("/"))
    await page.click("#logout")
    await page.wait_for_url(stack.console("/login"))
    await page.goto(stack.console("/keys"))
    assert page.url == stack.console("/login")

    assert watched.dialogs == []
    assert watched.csp_violations() == [], "the console's own pages must not need anything the CSP forbids"
    log = stack.gateway.process.log_text()
    assert secret not in log and ADMIN_TOKEN not in log, "secrets must never reach the logs"


async def test_audit_pages_through_many_calls(stack: Stack, new_page: NewPage) -> None:
    """Fifty-five calls: the first page shows fifty, "Older" shows the rest, newest first."""
    watched = await new_page()
    page = watched.page
    await login(page, stack)
    await page.goto(stack.console("/keys?tenant=acme"))
    await page.click("#create-key-submit")
    secret = (await page.locator("#secret").inner_text()).strip()
    async with mcp_client(stack.gateway.url("acme-tools"), {"Authorization": f"Bearer {secret}"}) as client:
        for i in range(55):
            await client.call_tool("echo", {"text": f"call {i}"})
        failed = await client.call_tool("fail", {"message": "on purpose"})
        assert failed.is_error

    await page.goto(stack.console("/audit?tool=echo"))
    first = page.locator("#audit tr[data-audit-id]")
    assert await first.count() == 50
    ids = [int(x) for x in await first.evaluate_all("rows => rows.map(r => r.dataset.auditId)")]
    assert ids == sorted(ids, reverse=True)
    await page.click("#older")
    older = [int(x) for x in await first.evaluate_all("rows => rows.map(r => r.dataset.auditId)")]
    assert len(older) == 5 and max(older) < min(ids)
    await shot(page, "audit-page-2")

    await page.goto(stack.console("/audit?outcome=tool_error"))
    assert await page.locator('#audit tr[data-tool="fail"]').count() == 1
    assert await page.locator('#audit tr[data-tool="echo"]').count() == 0
