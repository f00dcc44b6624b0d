"""The MCP authorization flow end to end, against a real provider: the `mcp` SDK's OAuth client
reads the gateway's RFC 9728 metadata, then Keycloak's authorization server metadata, then does
authorization code + PKCE with the pre-registered public client, or registers itself first
(RFC 7591 dynamic client registration, anonymous, allowed from loopback); headless Chromium fills
in Keycloak's login form (and its consent screen); then the client calls a tool through the gateway."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from playwright.async_api import Browser, Route
from pydantic import AnyUrl

from tests.gateway.support import GatewayProc
from tests.support.keycloak import PASSWORDS, PUBLIC_CLIENT, REDIRECT_URI, TEST_TIMEOUT_SECONDS, Keycloak

# The first test may wait for the provider's start-up.
pytestmark = [pytest.mark.late_tools, pytest.mark.timeout(TEST_TIMEOUT_SECONDS)]


PRE_REGISTERED = OAuthClientInformationFull(
    client_id=PUBLIC_CLIENT, redirect_uris=[AnyUrl(REDIRECT_URI)], token_endpoint_auth_method="none"
)


class MemoryStorage:
    """The client's token storage, starting with the pre-registered client, or none (it registers)."""

    def __init__(self, client_info: OAuthClientInformationFull | None = PRE_REGISTERED) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = client_info

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class BrowserLogin:
    """The person at the browser: opens the authorization URL, signs in, and hands back the redirect."""

    def __init__(self, browser: Browser, user: str) -> None:
        self.browser = browser
        self.user = user
        self.pages_seen: list[str] = []
        self._callback: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def open(self, authorization_url: str) -> None:
        context = await self.browser.new_context()
        context.set_default_timeout(60_000)

        async def catch_redirect(route: Route) -> None:
            # The redirect URI is the client's own (a native app's loopback listener): answer it here.
            if not self._callback.done():
                self._callback.set_result(route.request.url)
            await route.fulfill(status=200, content_type="text/plain", body="signed in; you may close this window")

        await context.route(f"{REDIRECT_URI}**", catch_redirect)
        page = await context.new_page()
        await page.goto(authorization_url)
        self.pages_seen.append(page.url)
        await page.fill("#username", self.user)
        await page.fill("#password", PASSWORDS[self.user])
        await page.click("#kc-login")
        # The client asks for offline_access with prompt=consent (SEP-2207): grant it if asked.
        consent = asyncio.ensure_future(page.wait_for_selector("input[name=accept]", timeout=120_000))
        waiting: set[asyncio.Future[Any]] = {consent, self._callback}
        done, _ = await asyncio.wait(waiting, timeout=120, return_when=asyncio.FIRST_COMPLETED)
        if consent in done and not self._callback.done():
            self.pages_seen.append(page.url)
            await page.click("input[name=accept]")
        consent.cancel()
        await asyncio.wait_for(asyncio.shield(self._callback), timeout=120)
        await context.close()

    async def callback(self) -> AuthorizationCodeResult:
        query = parse_qs(urlsplit(await self._callback).query)
        first = {name: values[0] for name, values in query.items()}
        return AuthorizationCodeResult(code=first["code"], state=first.get("state"), iss=first.get("iss"))


def oauth_client(gateway: GatewayProc, storage: MemoryStorage, login: BrowserLogin) -> OAuthClientProvider:
    return OAuthClientProvider(
        server_url=gateway.url("sso"),
        client_metadata=OAuthClientMetadata(
            redirect_uris=[AnyUrl(REDIRECT_URI)],
            client_name="test client",
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=login.open,
        callback_handler=login.callback,
    )


async def test_an_mcp_client_logs_in_at_the_provider_and_calls_a_tool(
    sso_gateway: GatewayProc, keycloak: Keycloak, browser: Browser
) -> None:
    login = BrowserLogin(browser, "alice")
    storage = MemoryStorage()
    oauth = oauth_client(sso_gateway, storage, login)
    async with (
        create_mcp_http_client(auth=oauth) as http,
        Client(streamable_http_client(sso_gateway.url("sso"), http_client=http)) as client,
    ):
        result = await client.call_tool("echo", {"text": "signed in"})
        assert result.content[0].text == "signed in"  # type: ignore[union-attr]

    # Every step happened against the real parts: the gateway's RFC 9728 metadata named the
    # provider, the provider's metadata gave the endpoints, and its login page was shown.
    context = oauth.context
    assert context.protected_resource_metadata is not None
    assert [str(s) for s in context.protected_resource_metadata.authorization_servers] == [keycloak.issuer]
    assert context.oauth_metadata is not None and str(context.oauth_metadata.issuer) == keycloak.issuer
    assert login.pages_seen and login.pages_seen[0].startswith(f"{keycloak.issuer}/protocol/openid-connect/auth")
    assert storage.client_info is not None and storage.client_info.client_id == PUBLIC_CLIENT  # no registration
    assert storage.tokens is not None
    claims = jwt.decode(storage.tokens.access_token, options={"verify_signature": False})
    assert claims["azp"] == PUBLIC_CLIENT and claims["preferred_username"] == "alice"
    assert "mcp-gateway" in ([claims["aud"]] if isinstance(claims["aud"], str) else claims["aud"])


async def test_an_mcp_client_registers_itself_at_the_provider_then_logs_in(
    sso_gateway: GatewayProc, keycloak: Keycloak, browser: Browser
) -> None:
    """No pre-registered client: the SDK registers one at Keycloak's registration endpoint (from its
    metadata), anonymously, then signs in with it; the realm's anonymous policies apply to it."""
    login = BrowserLogin(browser, "bob")
    storage = MemoryStorage(client_info=None)
    oauth = oauth_client(sso_gateway, storage, login)
    async with (
        create_mcp_http_client(auth=oauth) as http,
        Client(streamable_http_client(sso_gateway.url("sso"), http_client=http)) as client,
    ):
        result = await client.call_tool("echo", {"text": "registered"})
        assert result.content[0].text == "registered"  # type: ignore[union-attr]

    context = oauth.context
    assert context.oauth_metadata is not None and context.oauth_metadata.registration_endpoint is not None
    assert str(context.oauth_metadata.registration_endpoint).startswith(keycloak.issuer)
    registered = storage.client_info
    assert registered is not None and registered.client_id not in (PUBLIC_CLIENT, "")
    assert registered.issuer == keycloak.issuer  # the SDK bound the registration to this provider
    assert storage.tokens is not None
    claims = jwt.decode(storage.tokens.access_token, options={"verify_signature": False})
    assert claims["azp"] == registered.client_id and claims["sub"] == keycloak.user_id("bob")
    assert "mcp-gateway" in ([claims["aud"]] if isinstance(claims["aud"], str) else claims["aud"])
    # Keycloak gives a self-registered client only the scopes it asked for (and `basic`): no
    # `identity` scope, so no groups or email in its tokens; rules on groups then fail closed.
    assert "groups" not in claims and "mcp:tools" in claims["scope"].split()
    # The provider holds the new client, made under its anonymous policies: a public client
    # that must ask the person's consent and gets no scope it was not given.
    made = keycloak.client(registered.client_id)
    assert made is not None and made["publicClient"] and made["consentRequired"] and not made["fullScopeAllowed"]
    assert made["redirectUris"] == [REDIRECT_URI] and "identity" not in made["defaultClientScopes"]
