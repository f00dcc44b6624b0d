"""Per-user connections end to end: a caller without a connection gets a link; the user connects
in a browser (sign-in at the gateway's provider, then code + PKCE at the third party); their own
token then reaches the upstream on their calls only. Real Keycloak, PostgreSQL and Chromium."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import asyncpg
import jwt
import mcp_types as types
import pytest
import yaml
from mcp.shared.exceptions import MCPError
from mcp_operator.adapter_config import build
from playwright.async_api import Browser, BrowserContext, Route
from prometheus_client.parser import text_string_to_metric_families

from tests.connections.conftest import KEY_1, KEY_2, connection, seen_tokens, start_connected_gateway
from tests.gateway.support import GatewayProc, Spawn, mcp_client
from tests.support.keycloak import PASSWORDS, TEST_TIMEOUT_SECONDS, Keycloak
from tests.support.processes import free_port

pytestmark = [pytest.mark.late_tools, pytest.mark.timeout(TEST_TIMEOUT_SECONDS)]

URL_ELICITATION_REQUIRED = -32042
Tamper = Callable[[BrowserContext], Awaitable[None]]


@pytest.fixture(scope="module")
def gateway(
    spawn_module: Spawn, provider: Keycloak, token_server: str, module_db: str, tmp_path_factory: pytest.TempPathFactory
) -> GatewayProc:
    upstreams = [{"name": "crm", "url": f"{token_server}/mcp", "connection": connection(provider, displayName="CRM")}]
    tmp = tmp_path_factory.mktemp("connections")
    return start_connected_gateway(spawn_module, tmp, provider, upstreams, module_db, KEY_1, "gw-connections")


def caller_headers(provider: Keycloak, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {provider.access_token(user)}"}


async def link_for(gateway: GatewayProc, provider: Keycloak, user: str, *, elicits: bool = False) -> str:
    """A handshake-era call without a connection: the -32042 error names the link.

    `elicits`: the client declares elicitation (the call then takes the SDK path with a back channel).
    """

    async def never(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        raise AssertionError("the gateway asked through the back channel instead of answering -32042")

    options: dict[str, Any] = {"elicitation_callback": never} if elicits else {}
    async with mcp_client(gateway.url("crm"), caller_headers(provider, user), **options) as client:
        with pytest.raises(MCPError) as refused:
            await client.call_tool("whoami", {})
    error = refused.value.error
    assert error.code == URL_ELICITATION_REQUIRED, error
    elicitation = error.data["elicitations"][0]
    assert elicitation["mode"] == "url" and elicitation["elicitationId"]
    assert elicitation["url"] in error.message  # clients without URL elicitation still show it
    return str(elicitation["url"])


async def open_in_browser(browser: Browser, url: str, user: str, tamper: Tamper | None = None) -> str:
    """`user` opens `url`, signs in at the provider if asked; the text of the page it ends on."""
    context = await browser.new_context()
    context.set_default_timeout(120_000)
    try:
        if tamper is not None:
            await tamper(context)
        page = await context.new_page()
        await page.goto(url)
        found = await page.wait_for_selector("#username, #connected, #error-message, #connections, #no-connections")
        if await found.get_attribute("id") == "username":
            await page.fill("#username", user)
            await page.fill("#password", PASSWORDS[user])
            await page.click("#kc-login")
        final = await page.wait_for_selector("#connected, #error-message")
        return await final.inner_text()
    finally:
        await context.close()


async def call_whoami(gateway: GatewayProc, provider: Keycloak, user: str) -> str:
    async with mcp_client(gateway.url("crm"), caller_headers(provider, user)) as client:
        result = await client.call_tool("whoami", {})
    assert not result.is_error, result
    return str(result.content[0].text)  # type: ignore[union-attr]


async def stored(dsn: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT caller, upstream, key_id, sealed_refresh FROM upstream_connections")
    finally:
        await conn.close()
    return [dict(r) for r in rows]


def counted(gateway: GatewayProc, event: str, outcome: str | None = None) -> float:
    """mcp_gateway_connection_<event>_total of upstream crm (with `outcome`), from the gateway's /metrics."""
    with gateway.admin() as admin:
        text = admin.get("/metrics").text
    wanted = {"tenant": "acme", "profile": "crm", "upstream": "crm"} | ({"outcome": outcome} if outcome else {})
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"mcp_gateway_connection_{event}_total" and sample.labels == wanted:
                return float(sample.value)
    return 0.0  # none counted yet


def sub_of(provider: Keycloak, user: str) -> str:
    return str(jwt.decode(provider.access_token(user), options={"verify_signature": False})["sub"])


async def test_a_tampered_state_or_pkce_verifier_or_another_users_link_connects_nothing(
    gateway: GatewayProc, provider: Keycloak, browser: Browser, module_db: str
) -> None:
    link = await link_for(gateway, provider, "alice")

    # Bob opens Alice's link: he signs in as himself, and the gateway refuses.
    text = await open_in_browser(browser, link, "bob")
    assert "made for another user" in text

    # A state changed on its way through the provider does not authenticate.
    text = await open_in_browser(browser, link, "alice", rewrite_redirect(link, state=_flip))
    assert "state is invalid, tampered with or expired" in text

    # A PKCE challenge swapped on the way to the provider: the gateway's verifier no longer matches it.
    tamper_pkce = rewrite_redirect(link, code_challenge=lambda _: "A" * 43)
    text = await open_in_browser(browser, link, "alice", tamper_pkce)
    assert "refused the authorization code (invalid_grant" in text and "Nothing was stored" in text
    assert await stored(module_db) == []


def rewrite_redirect(link: str, **changes: Callable[[str], str]) -> Tamper:
    """Change query parameters of the gateway's redirect to the provider (the connect link's answer)."""

    async def tamper(context: BrowserContext) -> None:
        async def rewrite(route: Route) -> None:
            response = await route.fetch(max_redirects=0)
            location = _with_query(response.headers["location"], **changes)
            await route.fulfill(response=response, headers={**response.headers, "location": location})

        await context.route(lambda url: url == link, rewrite)

    return tamper


def _flip(value: str) -> str:
    return value[:-2] + ("AA" if value[-2:] != "AA" else "BB")


def _with_query(url: str, **changes: Callable[[str], str]) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    for name, change in changes.items():
        query[name] = change(query[name])
    return urlunsplit(parts._replace(query=urlencode(query)))


async def test_a_handshake_caller_connects_and_their_own_token_reaches_the_upstream_only_on_their_calls(
    gateway: GatewayProc, provider: Keycloak, browser: Browser, token_server: str, module_db: str
) -> None:
    links, connects, refreshes = (
        counted(gateway, "links"),
        counted(gateway, "connects", "ok"),
        counted(gateway, "refreshes", "ok"),
    )
    link = await link_for(gateway, provider, "alice")
    text = await open_in_browser(browser, link, "alice")
    assert "Connected: CRM" in text
    assert (counted(gateway, "links"), counted(gateway, "connects", "ok")) == (links + 1, connects + 1)

    assert await call_whoami(gateway, provider, "alice") == "alice via third-party-app"
    assert await call_whoami(gateway, provider, "alice") == "alice via third-party-app"  # refreshed again
    # Her 30 s tokens, less the 30 s margin, are refreshed on every call.
    assert counted(gateway, "refreshes", "ok") == refreshes + 2
    # Bob has no connection: Alice's token is never used for him. (A client declaring elicitation too.)
    await link_for(gateway, provider, "bob")
    await link_for(gateway, provider, "bob", elicits=True)

    rows = await stored(module_db)
    assert [(r["caller"], r["upstream"], r["key_id"]) for r in rows] == [
        (f"sub:{sub_of(provider, 'alice')}", "crm", "k1")
    ]
    assert b"eyJ" not in rows[0]["sealed_refresh"]  # the refresh token is not stored in clear
    # Only the third party's tokens reached the upstream: never a caller's token for the gateway.
    tokens = [value.removeprefix("Bearer ") for value in seen_tokens(token_server)]
    assert tokens, "the upstream saw no token"
    for token in tokens:
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["azp"] == "third-party-app" and claims["preferred_username"] == "alice"


async def test_resource_reads_and_prompts_carry_the_callers_own_token_too(
    gateway: GatewayProc, provider: Keycloak
) -> None:
    """Runs after the test above: Alice is connected, Bob is not (yet)."""
    async with mcp_client(gateway.url("crm"), caller_headers(provider, "alice")) as client:
        read = await client.read_resource("crm://me")
        assert read.contents[0].text == "alice via third-party-app"  # type: ignore[union-attr]
        prompt = await client.get_prompt("greet_me")
        assert "Hello alice via third-party-app" in str(prompt.messages[0].content)
    for mode in ("legacy", "2026-07-28"):
        async with mcp_client(gateway.url("crm"), caller_headers(provider, "bob"), mode=mode) as client:
            for request in (client.read_resource("crm://me"), client.get_prompt("greet_me")):
                with pytest.raises(MCPError) as refused:
                    await request
                error = refused.value.error
                assert error.code == URL_ELICITATION_REQUIRED, (mode, error)
                assert error.data["elicitations"][0]["url"].startswith(f"{gateway.base}/console/connect?link=")


async def test_a_2026_client_gets_an_input_required_round_and_retries_after_connecting(
    gateway: GatewayProc, provider: Keycloak, browser: Browser
) -> None:
    asked: list[str] = []

    async def on_elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert isinstance(params, types.ElicitRequestURLParams)
        asked.append(params.url)
        assert "Connected: CRM" in await open_in_browser(browser, params.url, "bob")
        return types.ElicitResult(action="accept")

    async def decline(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="decline")

    headers = caller_headers(provider, "bob")
    async with mcp_client(gateway.url("crm"), headers, mode="2026-07-28", elicitation_callback=decline) as client:
        declined = await client.call_tool("whoami", {})
    assert declined.is_error and "did not connect your CRM account (decline)" in declined.content[0].text  # type: ignore[union-attr]
    async with mcp_client(gateway.url("crm"), headers, mode="2026-07-28", elicitation_callback=on_elicit) as client:
        result = await client.call_tool("whoami", {})
    assert not result.is_error and result.content[0].text == "bob via third-party-app"  # type: ignore[union-attr]
    assert len(asked) == 1 and asked[0].startswith(f"{gateway.base}/console/connect?link=")


async def test_users_see_and_revoke_their_connections_and_a_revoked_refresh_token_asks_again(
    gateway: GatewayProc, provider: Keycloak, browser: Browser, module_db: str
) -> None:
    """Runs after the two above: Alice and Bob are connected."""
    context = await browser.new_context()
    context.set_default_timeout(120_000)
    page = await context.new_page()
    await page.goto(f"{gateway.base}/console/connections?profile=crm")
    await page.fill("#username", "bob")
    await page.fill("#password", PASSWORDS["bob"])
    await page.click("#kc-login")
    await page.wait_for_selector("#connections")
    assert await page.locator("#connections tbody tr").count() == 1  # his own, not Alice's
    revocations = counted(gateway, "revocations")
    await page.click("#revoke-crm-crm")
    await page.wait_for_selector("#no-connections")
    await context.close()
    assert counted(gateway, "revocations") == revocations + 1
    assert [r["caller"] for r in await stored(module_db)] == [f"sub:{sub_of(provider, 'alice')}"]
    await link_for(gateway, provider, "bob")

    # Alice's sessions at the provider end: her refresh token is refused, the row deleted, a new link given.
    with provider.admin() as admin:
        user = admin.get("/mcp/users", params={"username": "alice", "exact": "true"}).json()[0]
        admin.post(f"/mcp/users/{user['id']}/logout").raise_for_status()
    async with mcp_client(gateway.url("crm"), caller_headers(provider, "alice")) as client:
        with pytest.raises(MCPError) as refused:
            await client.call_tool("whoami", {})
    assert refused.value.error.code == URL_ELICITATION_REQUIRED
    assert "expired or was revoked" in refused.value.error.message
    assert await stored(module_db) == []
    assert counted(gateway, "refreshes", "refused") == 1


async def test_provider_down_and_key_rotation(
    spawn_module: Spawn,
    gateway: GatewayProc,
    provider: Keycloak,
    browser: Browser,
    token_server: str,
    module_db: str,
    tmp_path: Path,
) -> None:
    # Alice connects (k1). Then a gateway whose token endpoint is down: a clear error, the row kept.
    assert "Connected: CRM" in await open_in_browser(browser, await link_for(gateway, provider, "alice"), "alice")
    dead = f"http://127.0.0.1:{_closed_port()}/token"
    auth_url = f"{provider.issuer}/protocol/openid-connect/auth"
    down = connection(provider, issuer=None, authorizationEndpoint=auth_url, tokenEndpoint=dead)
    upstreams = [{"name": "crm", "url": f"{token_server}/mcp", "connection": down}]
    gw_down = start_connected_gateway(
        spawn_module, tmp_path, provider, upstreams, module_db, KEY_1, "gw-down", methods=["apiKey", "oidc"]
    )
    async with mcp_client(gw_down.url("crm"), caller_headers(provider, "alice")) as client:
        with pytest.raises(MCPError) as unavailable:
            await client.call_tool("whoami", {})
    assert unavailable.value.error.code == -32052
    assert "unreachable" in unavailable.value.error.message and "connection is kept" in unavailable.value.error.message
    # Connecting while the token endpoint is down: the browser is told, nothing is stored.
    text = await open_in_browser(browser, await link_for(gw_down, provider, "bob"), "bob")
    assert "could not be reached" in text and "Nothing was stored" in text
    assert [r["key_id"] for r in await stored(module_db)] == ["k1"]
    assert (counted(gw_down, "refreshes", "unavailable"), counted(gw_down, "connects", "unavailable")) == (1, 1)
    # An API-key caller of the same profile cannot connect: told so, nothing sent upstream.
    with gw_down.admin() as admin:
        key = admin.post("/admin/v1/tenants/acme/keys", json={"name": "robot"}).json()["key"]
    async with mcp_client(gw_down.url("crm"), {"Authorization": f"Bearer {key}"}) as client:
        with pytest.raises(MCPError) as forbidden:
            await client.call_tool("whoami", {})
    assert forbidden.value.error.code == -32003 and "API keys and anonymous callers cannot" in str(forbidden.value)
    gw_down.process.stop()

    # Rotation: k2 first, k1 still listed. Alice's k1 row still works and is re-sealed under k2.
    upstreams = [{"name": "crm", "url": f"{token_server}/mcp", "connection": connection(provider, displayName="CRM")}]
    rotated = start_connected_gateway(
        spawn_module, tmp_path, provider, upstreams, module_db, f"{KEY_2},{KEY_1}", "gw-rotated"
    )
    assert await call_whoami(rotated, provider, "alice") == "alice via third-party-app"
    assert [r["key_id"] for r in await stored(module_db)] == ["k2"]
    # A new connection is written under k2 as well.
    assert "Connected: CRM" in await open_in_browser(browser, await link_for(rotated, provider, "bob"), "bob")
    assert sorted(r["key_id"] for r in await stored(module_db)) == ["k2", "k2"]
    rotated.process.stop()
    # (A ring without k2 cannot open these rows: test_connection_store.py.)


def _closed_port() -> int:
    return free_port()  # nothing listens there


async def test_an_operator_made_adapter_relays_the_users_connected_token(
    spawn_module: Spawn,
    provider: Keycloak,
    browser: Browser,
    token_server: str,
    module_db: str,
    tmp_path: Path,
) -> None:
    """An Upstream with spec.connection and spec.mcp.auth {type: connection}: the adapter config the
    operator renders for it (adapter_config.build, what goes into its ConfigMap) runs as a real adapter
    in front of the third-party server, and the gateway's upstream is that adapter."""
    spec = {
        "mcp": {"url": f"{token_server}/mcp", "auth": {"type": "connection"}},
        "connection": {"issuer": provider.issuer, "clientId": "third-party-app"},
    }
    rendered = build("crm", "acme-tools", spec)
    assert rendered.config["sources"][0]["auth"] == {"type": "connection"} and rendered.env == []
    config = tmp_path / "adapter.yaml"
    config.write_text(yaml.safe_dump(rendered.config))
    port = free_port()
    cmd = [sys.executable, "-m", "mcp_adapter.cli", "--config", str(config), "--port", str(port)]
    spawn_module(cmd, name="crm-adapter", ready_url=f"http://127.0.0.1:{port}/readyz", timeout=60)
    # The routing entry the operator renders: its own adapter, told who calls.
    entry = {"url": f"http://127.0.0.1:{port}/mcp", "sendCallerHeader": True}
    upstreams = [{"name": "crm", **entry, "connection": connection(provider, displayName="CRM")}]
    adapted = start_connected_gateway(
        spawn_module, tmp_path, provider, upstreams, module_db, f"{KEY_2},{KEY_1}", "gw-adapter"
    )
    before = len(seen_tokens(token_server))
    for user in ("alice", "bob"):
        async with mcp_client(adapted.url("crm"), caller_headers(provider, user)) as client:
            try:
                result = await client.call_tool("whoami", {})
            except MCPError as refused:  # not connected (yet) on this gateway's database: connect now
                assert refused.error.code == URL_ELICITATION_REQUIRED
                link = refused.error.data["elicitations"][0]["url"]
                assert "Connected: CRM" in await open_in_browser(browser, link, user)
                result = await client.call_tool("whoami", {})
            assert result.content[0].text == f"{user} via third-party-app"  # type: ignore[union-attr]
            read = await client.read_resource("crm://me")
            assert read.contents[0].text == f"{user} via third-party-app"  # type: ignore[union-attr]
    # Through the adapter too, only the third party's tokens reached the server.
    tokens = [value.removeprefix("Bearer ") for value in seen_tokens(token_server)[before:]]
    assert len(tokens) >= 4
    assert {jwt.decode(t, options={"verify_signature": False})["azp"] for t in tokens} == {"third-party-app"}
    adapted.process.stop()
