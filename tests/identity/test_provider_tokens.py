"""Tokens a real OIDC provider (Keycloak) issues, checked by the gateway: the right audience
opens the profile, another API's audience, an expired token and a rotated-out key do not, and a
provider that is down gives a clear error. Forged tokens stay in tests/gateway/test_oidc.py
(a real provider does not sign them)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import jwt
import pytest

from tests.gateway.support import GatewayProc, Spawn, mcp_client, profile, rpc, start_gateway, write_config
from tests.support.keycloak import SHORT_LIVED_CLIENT, TEST_TIMEOUT_SECONDS, Keycloak
from tests.support.processes import free_port

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


async def test_an_expired_token_is_refused(sso_gateway: GatewayProc, keycloak: Keycloak) -> None:
    token = keycloak.access_token("bob", scope="", client=SHORT_LIVED_CLIENT)  # lives 2 s
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] <= 2
    time.sleep(max(0.0, claims["exp"] - time.time()) + 1.5)
    response = call(sso_gateway, token)
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


async def test_key_rotation_at_the_provider(sso_gateway: GatewayProc, keycloak: Keycloak) -> None:
    """The realm gets a new signing key and loses the old one: new tokens work at once, old ones stop."""
    before = keycloak.access_token("alice")
    assert call(sso_gateway, before).status_code == 200
    old_kid = jwt.get_unverified_header(before)["kid"]

    keycloak.rotate_signing_key()
    assert old_kid not in keycloak.signing_kids()
    after = keycloak.access_token("alice")
    assert jwt.get_unverified_header(after)["kid"] != old_kid

    assert call(sso_gateway, after).status_code == 200
    # The gateway refetched the key set for the new key id: the withdrawn key is gone from it too.
    refused = call(sso_gateway, before)
    assert refused.status_code == 401
    assert "key the issuer does not publish" in refused.json()["error"]["message"]


async def test_a_provider_that_is_down_gives_a_clear_error(
    spawn: Spawn, feature: str, tmp_path: Path, keycloak: Keycloak
) -> None:
    """The provider's keys cannot be fetched: 503 saying so (not a stack trace, not 'bad token')."""
    down = f"http://127.0.0.1:{free_port()}/realms/mcp/protocol/openid-connect/certs"  # nothing listens
    oidc = {**keycloak.oidc_settings(), "jwksUrl": down}
    config = write_config(
        tmp_path / "routing.yaml",
        {
            "gateway": {"allowPrivateJwks": True},
            "tenants": [{"id": "acme"}],
            "profiles": [profile("sso", "acme", [("feat", feature)], auth={"mode": "oidc", "oidc": oidc})],
        },
    )
    gateway = start_gateway(spawn, config, name="gw-provider-down")
    response = call(gateway, keycloak.access_token("alice"))
    assert response.status_code == 503
    message = response.json()["error"]["message"]
    assert "identity provider" in message and "try again" in message
    assert "Traceback" not in response.text
    assert "retry-after" in response.headers
    log = gateway.process.log_text()
    assert f"cannot fetch JWKS from {down}" in log and "Traceback" not in log
