"""The profile page shows the discovery mode and lets an operator try a request, in a real browser:
the answer is what a caller's `search_tools` would get (policy applied), and a bad query is explained."""

from __future__ import annotations

from tests.console.conftest import NewPage
from tests.console.support import Stack, login, shot


async def test_profile_page_tries_a_discovery_query(stack: Stack, new_page: NewPage) -> None:
    watched = await new_page()
    page = watched.page
    await login(page, stack)
    await page.goto(stack.console("/profiles/acme-tools"))
    assert await page.text_content("#discovery-mode") == "off"

    await page.fill("#discovery-query", "add two integers")
    await page.click("#discovery-submit")
    await page.wait_for_selector("#discovery-results")
    first = page.locator("#discovery-results tbody tr").first
    assert await first.get_attribute("data-tool") == "add"
    assert (await page.text_content("#discovery-answered") or "").startswith("Ranked lexical")
    await shot(page, "profile-discovery")

    # `slow` is hidden by the profile's policy: the search never shows it.
    await page.fill("#discovery-query", "sleep for some seconds then answer")
    await page.click("#discovery-submit")
    await page.wait_for_selector("#discovery-results")
    shown = await page.locator("#discovery-results tbody tr").evaluate_all(
        "rows => rows.map(r => r.getAttribute('data-tool'))"
    )
    assert "slow" not in shown

    await page.fill("#discovery-query", "the of and")
    await page.click("#discovery-submit")
    assert "no searchable words" in (await page.text_content("#discovery-error") or "")
    assert not watched.csp_violations() and not watched.dialogs
