"""Tokens a real OIDC provider (Keycloak) issues, checked by the gateway: the right audience
opens the profile, another API's audience does not. Forged tokens stay in
tests/gateway/test_oidc.py (a real provider does not sign them)."""

from __future__ import annotations

import httpx
import jwt
import pytest

from tests.gateway.support import GatewayProc, mcp_client, rpc
from tests.support.keycloak import TEST_TIMEOUT_SECONDS, Keycloak

# The first test may wait for the provider's start-up.
pytestmark = [pytest.mark.late_tools, pytest.mark.timeout(TEST_TIMEOUT_SECONDS)]


def call(gateway: GatewayProc, token: str, profile_id: str = "sso") -> httpx.Response:
    headers = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": "2025-11-25",
        "Authorization": f"Bearer {token}",
    }
    return httpx.post(gateway.url(profile_id), json=rpc("tools/list"), headers=headers, timeout=30)


async def test_a_token_for_the_gateways_audience_opens_the_profile(
    sso_gateway: GatewayProc, keycloak: Keycloak
) -> None:
    token = keycloak.access_token("alice", scope="mcp:tools")
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == "mcp-gateway"
    async with mcp_client(sso_gateway.url("sso"), {"Authorization": f"Bearer {token}"}) as client:
        result = await client.call_tool("echo", {"text": "from keycloak"})
    assert result.content[0].text == "from keycloak"  # type: ignore[union-attr]


async def test_a_token_for_another_audience_is_refused(sso_gateway: GatewayProc, keycloak: Keycloak) -> None:
    token = keycloak.access_token("alice", scope="reports")  # audience reports-api, not the gateway
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == "reports-api"
    response = call(sso_gateway, token)
    assert response.status_code == 401
    assert "audience does not match" in response.json()["error"]["message"]
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
