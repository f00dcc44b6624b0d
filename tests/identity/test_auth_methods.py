"""One profile, several ways in: `auth: {methods: [apiKey, oidc]}` accepts the gateway's API keys
and the real provider's tokens on the same endpoint, says what it accepts when refusing, and
records who called (sub, groups, email; or the key) in the audit log in PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.support import GatewayProc, Spawn, mcp_client, profile, rpc, start_gateway, write_config
from tests.support.keycloak import TEST_TIMEOUT_SECONDS, Keycloak

# The first test may wait for the provider's start-up.
pytestmark = [pytest.mark.late_tools, pytest.mark.timeout(TEST_TIMEOUT_SECONDS)]


@pytest.fixture
def gateway(spawn: Spawn, feature: str, tmp_path: Path, keycloak: Keycloak, pg_dsn: str) -> GatewayProc:
    oidc = keycloak.oidc_settings(requiredScopes=["mcp:tools"], identityClaims={"subject": "preferred_username"})
    config = write_config(
        tmp_path / "routing.yaml",
        {
            "gateway": {"allowPrivateJwks": True},
            "tenants": [{"id": "acme"}],
            "profiles": [
                profile("both", "acme", [("feat", feature)], auth={"methods": ["apiKey", "oidc"], "oidc": oidc}),
                profile("keys", "acme", [("feat", feature)], auth={"mode": "apiKey"}),  # the single-mode form
            ],
        },
    )
    return start_gateway(spawn, config, dsn=pg_dsn, name="gw-both")


ACCEPT = "application/json, text/event-stream"


def list_tools(gateway: GatewayProc, profile_id: str, credential: str | None) -> httpx.Response:
    headers = {"Accept": ACCEPT, "Content-Type": "application/json"}
    if credential is not None:
        headers["Authorization"] = f"Bearer {credential}"
    return httpx.post(gateway.url(profile_id), json=rpc("tools/list"), headers=headers, timeout=30)


def new_key(gateway: GatewayProc, name: str) -> dict[str, Any]:
    with gateway.admin() as admin:
        created = admin.post("/admin/v1/tenants/acme/keys", json={"name": name})
    assert created.status_code == 201, created.text
    return dict(created.json())


async def audit_of(gateway: GatewayProc, count: int) -> list[dict[str, Any]]:
    """The profile's newest audit records, once `count` are stored (the writer flushes in the background)."""
    for _ in range(100):
        with gateway.admin() as admin:
            items: list[dict[str, Any]] = admin.get("/admin/v1/audit", params={"profile": "both"}).json()["items"]
        if len(items) >= count:
            return items
        await asyncio.sleep(0.2)
    raise AssertionError(f"expected {count} audit records, got {items}")


async def test_api_keys_and_provider_tokens_open_the_same_profile(gateway: GatewayProc, keycloak: Keycloak) -> None:
    key = new_key(gateway, "ci-bot")
    token = keycloak.access_token("alice")
    for credential in (key["key"], token):
        async with mcp_client(gateway.url("both"), {"Authorization": f"Bearer {credential}"}) as client:
            assert (await client.call_tool("echo", {"text": "hi"})).content[0].text == "hi"  # type: ignore[union-attr]
    # X-API-Key works there too, as on an apiKey profile.
    headers = {"X-API-Key": key["key"], "Content-Type": "application/json", "Accept": ACCEPT}
    assert httpx.post(gateway.url("both"), json=rpc("tools/list"), headers=headers, timeout=30).status_code == 200

    # The audit log says who called: the key's id and name; the person's name, groups and email.
    by_kind = {("keyId" in r["identity"]): r for r in await audit_of(gateway, 2)}
    assert by_kind[True]["identity"] == {"keyId": key["id"], "keyName": "ci-bot", "keyLabels": {}}
    assert by_kind[True]["caller"] == f"key:{key['id']}"
    person = by_kind[False]["identity"]
    assert person == {"sub": "alice", "groups": ["admins", "dev"], "email": "alice@example.com"}
    assert by_kind[False]["caller"].startswith("sub:")  # the token's own subject (the provider's user id)


async def test_a_refusal_names_every_accepted_method(gateway: GatewayProc, keycloak: Keycloak) -> None:
    metadata_url = f"{gateway.base}/.well-known/oauth-protected-resource/both/mcp"
    missing = list_tools(gateway, "both", None)
    assert missing.status_code == 401
    message = missing.json()["error"]["message"]
    assert "API key" in message and f"OAuth bearer token from {keycloak.issuer}" in message
    assert f'resource_metadata="{metadata_url}"' in missing.headers["www-authenticate"]
    assert httpx.get(metadata_url).json()["authorization_servers"] == [keycloak.issuer]

    bad_key = list_tools(gateway, "both", "mcpk_0123456789ab_not-a-key")
    assert bad_key.status_code == 401 and "API key is not valid" in bad_key.json()["error"]["message"]
    assert 'error="invalid_token"' in bad_key.headers["www-authenticate"]
    assert "resource_metadata=" in bad_key.headers["www-authenticate"]

    wrong_audience = list_tools(gateway, "both", keycloak.access_token("alice", scope="reports"))
    assert wrong_audience.status_code == 401
    assert "audience does not match" in wrong_audience.json()["error"]["message"]


async def test_the_single_mode_form_still_accepts_only_its_method(gateway: GatewayProc, keycloak: Keycloak) -> None:
    assert list_tools(gateway, "keys", new_key(gateway, "k")["key"]).status_code == 200
    refused = list_tools(gateway, "keys", keycloak.access_token("alice"))
    assert refused.status_code == 401 and "API key is not valid" in refused.json()["error"]["message"]
    assert httpx.get(f"{gateway.base}/.well-known/oauth-protected-resource/keys/mcp").status_code == 404
