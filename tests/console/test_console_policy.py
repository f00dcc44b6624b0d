"""The profile page shows the policy rules and call limits, and previews what a caller with given
claims would list, in a real browser; bad claims are explained; a resource read a rule refused is
in the audit page as such."""

from __future__ import annotations

import pytest
from mcp.shared.exceptions import MCPError

from tests.console.conftest import NewPage
from tests.console.support import CONSOLE_RULE, Stack, login, shot
from tests.gateway.support import mcp_client


async def _preview(page: object, claims: str) -> None:
    await page.fill("#preview-claims", claims)  # type: ignore[attr-defined]
    await page.click("#preview-submit")  # type: ignore[attr-defined]


async def test_profile_page_shows_rules_limits_and_a_caller_preview(stack: Stack, new_page: NewPage) -> None:
    watched = await new_page()
    page = watched.page
    await login(page, stack)
    await page.goto(stack.console("/profiles/acme-tools"))
    rule = page.locator('#rules tr[data-rule="interns-no-add"]')
    assert CONSOLE_RULE["when"] in (await rule.text_content() or "")
    limit = await page.locator('#call-limits tr[data-limit="adds-per-user"]').text_content() or ""
    assert "600 per minute" in limit and "subject" in limit

    await _preview(page, '{"sub": "bob", "groups": ["interns"]}')
    await page.wait_for_selector("#preview-results")
    add = await page.locator('#preview-results tr[data-tool="add"]').text_content() or ""
    assert "hidden by rule interns-no-add" in add
    assert "listed" in (await page.locator('#preview-results tr[data-tool="echo"]').text_content() or "")
    assert "hidden (globs)" in (await page.locator('#preview-results tr[data-tool="slow"]').text_content() or "")
    await shot(page, "profile-policy-preview")

    await _preview(page, '{"sub": "alice", "groups": ["dev"]}')
    await page.wait_for_selector("#preview-results")
    assert "listed" in (await page.locator('#preview-results tr[data-tool="add"]').text_content() or "")

    await _preview(page, "{not json")
    assert "not JSON" in (await page.text_content("#preview-error") or "")
    await _preview(page, "[1, 2]")
    assert "must be a JSON object" in (await page.text_content("#preview-error") or "")
    assert not watched.csp_violations() and not watched.dialogs


async def test_the_audit_page_shows_a_resource_read_refused_by_a_rule(stack: Stack, new_page: NewPage) -> None:
    with stack.gateway.admin() as admin:
        key = admin.post("/admin/v1/tenants/acme/keys", json={"labels": {"team": "contractors"}}).json()["key"]
    async with mcp_client(stack.gateway.url("acme-tools"), {"Authorization": f"Bearer {key}"}) as client:
        with pytest.raises(MCPError):
            await client.read_resource("test://static-binary")
    watched = await new_page()
    page = watched.page
    await login(page, stack)
    await page.goto(stack.console("/audit?outcome=policy_refused"))
    row = page.locator('#audit tr[data-kind="resource"][data-tool="test://static-binary"]')
    assert await row.count() == 1
    text = await row.text_content() or ""
    assert "resource" in text and "policy_refused" in text and "'contractors-no-binary'" in text
    await shot(page, "audit-policy-refused-resource")
    assert not watched.csp_violations() and not watched.dialogs
