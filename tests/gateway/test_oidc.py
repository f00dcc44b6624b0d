"""OIDC/JWT profiles against a JWKS server the test runs: valid, expired, wrong audience,
wrong issuer, alg none, HS256 signed with the public key, key rotation, scopes, RFC 9728."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.gateway.support import (
    GatewayProc,
    Spawn,
    mcp_client,
    open_session,
    profile,
    rpc,
    session_ping,
    start_gateway,
    write_config,
)
from tests.support.jwks import AUDIENCE, ISSUER, Issuer, oidc_settings, running_issuer


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with running_issuer("k1") as issuer:
        yield issuer


@pytest.fixture(scope="module")
def gateway(
    spawn_module: Spawn, feature_module: str, tmp_path_factory: pytest.TempPathFactory, issuer: Issuer
) -> GatewayProc:
    oidc = oidc_settings(issuer.url, leewaySeconds=5, requiredScopes=["mcp:tools"], jwksMinRefetchSeconds=1)
    config = write_config(
        tmp_path_factory.mktemp("oidc") / "routing.yaml",
        {
            "gateway": {"allowPrivateJwks": True},  # the test's issuer is on loopback
            "tenants": [{"id": "acme"}],
            "profiles": [profile("sso", "acme", [("feat", feature_module)], auth={"mode": "oidc", "oidc": oidc})],
        },
    )
    return start_gateway(spawn_module, config)


def call(gw: GatewayProc, token: str | None) -> httpx.Response:
    headers = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": "2025-11-25",
    }
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(gw.url("sso"), json=rpc("tools/list"), headers=headers, timeout=10)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(**claims: Any) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "k1"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


def hs256_with_public_key(issuer: Issuer) -> str:
    """The algorithm-confusion attack: HMAC 'signed' with the published RSA public key."""
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": now + 300, "scope": "mcp:tools"}
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    payload = _b64(json.dumps(claims).encode())
    mac = hmac.new(issuer.public_pem("k1"), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(mac)}"


async def test_valid_token_and_metadata(gateway: GatewayProc, issuer: Issuer) -> None:
    assert call(gateway, issuer.token("k1")).status_code == 200
    async with mcp_client(gateway.url("sso"), {"Authorization": f"Bearer {issuer.token('k1')}"}) as client:
        assert (await client.call_tool("echo", {"text": "sso"})).content[0].text == "sso"  # type: ignore[union-attr]

    missing = call(gateway, None)
    assert missing.status_code == 401
    challenge = missing.headers["www-authenticate"]
    metadata_url = f"{gateway.base}/.well-known/oauth-protected-resource/sso/mcp"
    assert f'resource_metadata="{metadata_url}"' in challenge
    metadata = httpx.get(metadata_url).json()
    assert metadata["resource"] == gateway.url("sso")
    assert metadata["authorization_servers"] == [ISSUER]
    assert metadata["scopes_supported"] == ["mcp:tools"]


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda i: i.token("k1", exp=int(time.time()) - 120), "expired"),
        (lambda i: i.token("k1", aud="someone-else"), "audience"),
        (lambda i: i.token("k1", iss="https://evil.test"), "issuer"),
        (lambda i: unsigned_token(iss=ISSUER, aud=AUDIENCE, sub="x", exp=int(time.time()) + 300), "algorithm"),
        (hs256_with_public_key, "algorithm"),
        (lambda i: "not.a.jwt", "JWT"),
    ],
    ids=["expired", "wrong-aud", "wrong-iss", "alg-none", "hs256-public-key", "garbage"],
)
async def test_bad_tokens_are_401(
    gateway: GatewayProc, issuer: Issuer, make: Callable[[Issuer], str], fragment: str
) -> None:
    response = call(gateway, make(issuer))
    assert response.status_code == 401
    assert fragment in response.json()["error"]["message"]
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_session_replayed_under_another_subject_is_not_found(gateway: GatewayProc, issuer: Issuer) -> None:
    """A valid token for another subject cannot use alice's session id; a fresh token for alice can."""
    alice = {"Authorization": f"Bearer {issuer.token('k1')}"}
    session = open_session(gateway.url("sso"), alice)
    mallory = {"Authorization": f"Bearer {issuer.token('k1', sub='mallory')}"}
    replay = session_ping(gateway.url("sso"), session, mallory)
    assert replay.status_code == 404
    assert "session not found" in replay.json()["error"]["message"]
    renewed = {"Authorization": f"Bearer {issuer.token('k1', jti='renewed')}"}
    assert session_ping(gateway.url("sso"), session, renewed).status_code == 200


async def test_missing_scope_is_403(gateway: GatewayProc, issuer: Issuer) -> None:
    response = call(gateway, issuer.token("k1", scope="profile email"))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_key_rotation_is_followed(gateway: GatewayProc, issuer: Issuer) -> None:
    assert call(gateway, issuer.token("k1")).status_code == 200
    fetches = issuer.fetches
    # The issuer rotates: a new key is published and the old one withdrawn.
    issuer.add_key("k2")
    issuer.published = ["k2"]
    try:
        check_rotation(gateway, issuer, fetches)
    finally:
        issuer.published = ["k1", "k2"]


def check_rotation(gateway: GatewayProc, issuer: Issuer, fetches: int) -> None:
    time.sleep(1.1)  # past jwksMinRefetchSeconds
    assert call(gateway, issuer.token("k2")).status_code == 200
    assert issuer.fetches == fetches + 1
    # Cached: valid tokens don't refetch; unknown kids refetch at most once per interval.
    assert call(gateway, issuer.token("k2")).status_code == 200
    for _ in range(5):
        assert call(gateway, issuer.token("k2", sub="x") + "").status_code == 200
    forged_kid = jwt.encode({"sub": "x"}, issuer.keys["k2"], algorithm="RS256", headers={"kid": "unknown"})
    for _ in range(5):
        assert call(gateway, forged_kid).status_code == 401
    assert issuer.fetches <= fetches + 2


async def test_jwks_url_cannot_reach_private_networks_and_urls_are_public(
    spawn: Spawn, feature: str, tmp_path: Path, issuer: Issuer
) -> None:
    """A tenant's Profile names the JWKS URL: by default only https and public addresses are fetched."""
    port = issuer.url.split(":")[2].split("/")[0]

    def sso(pid: str, jwks_url: str) -> dict[str, Any]:
        oidc = oidc_settings(jwks_url)
        return profile(pid, "acme", [("feat", feature)], auth={"mode": "oidc", "oidc": oidc})

    config = write_config(
        tmp_path / "routing.yaml",
        {
            "gateway": {"publicUrl": "https://mcp.example.com/"},
            "tenants": [{"id": "acme"}],
            "profiles": [
                sso("plain-http", issuer.url),
                sso("private-https", f"https://127.0.0.1:{port}/jwks.json"),
                sso("metadata-ip", "https://169.254.169.254/latest/meta-data/jwks"),
            ],
        },
    )
    gateway = start_gateway(spawn, config, name="gw-jwks-guard")
    fetches = issuer.fetches
    for pid in ("plain-http", "private-https", "metadata-ip"):
        response = httpx.post(
            gateway.url(pid),
            json=rpc("tools/list"),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {issuer.token('k1')}"},
            timeout=10,
        )
        assert response.status_code == 401, (pid, response.text)
        assert "key the issuer does not publish" in response.json()["error"]["message"]
    assert issuer.fetches == fetches  # nothing reached the loopback server
    log = gateway.process.log_text()
    assert "must be an https:// URL" in log and "allowPrivateJwks" in log
    assert "non-public address 127.0.0.1" in log and "non-public address 169.254.169.254" in log

    # Behind a TLS ingress, the URLs the gateway hands out are its public ones, not the Host it was reached on.
    challenge = response.headers["www-authenticate"]
    assert 'resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/metadata-ip/mcp"' in (
        challenge
    )
    metadata = httpx.get(f"{gateway.base}/.well-known/oauth-protected-resource/metadata-ip/mcp").json()
    assert metadata["resource"] == "https://mcp.example.com/metadata-ip/mcp"
