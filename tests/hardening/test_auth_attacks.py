"""Auth attacks not covered by tests/gateway: tokens not yet valid, without expiry, signed by
a stranger's key with a known kid, with a tenant claim of another tenant; profile ids with
path tricks and look-alike characters; oversized headers. (alg none, HS256 with the public
key, wrong aud/iss, expiry, cross-tenant and revoked keys are in tests/gateway.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import jwt
import pytest

from tests.gateway.support import GatewayProc, Spawn, profile, rpc, start_gateway, write_config
from tests.support.jwks import AUDIENCE, ISSUER, Issuer, new_rsa_key, oidc_settings, running_issuer

HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2025-11-25",
}


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with running_issuer("k1") as issuer:
        yield issuer


@pytest.fixture(scope="module")
def gateway(
    spawn_module: Spawn, feature_module: str, tmp_path_factory: pytest.TempPathFactory, issuer: Issuer
) -> GatewayProc:
    oidc = oidc_settings(issuer.url, leewaySeconds=5, tenantClaim="tenant")
    config = write_config(
        tmp_path_factory.mktemp("attacks") / "routing.yaml",
        {
            "gateway": {"allowPrivateJwks": True},  # the test's issuer is on loopback
            "tenants": [{"id": "acme"}, {"id": "globex"}],
            "profiles": [
                profile("acme-sso", "acme", [("feat", feature_module)], auth={"mode": "oidc", "oidc": oidc}),
                profile("acme-dev", "acme", [("feat", feature_module)]),
                profile("open", "globex", [("feat", feature_module)], auth={"mode": "none"}),
            ],
        },
    )
    return start_gateway(spawn_module, config, name="gw-attacks")


def post(url: str, token: str | None = None, **extra: str) -> httpx.Response:
    headers = {**HEADERS, **extra}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}".strip()
    return httpx.post(url, json=rpc("tools/list"), headers=headers, timeout=10)


def stranger_token(**claims: object) -> str:
    """Signed by a key the issuer never published, under the issuer's own kid."""
    key = new_rsa_key()
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": now + 300, "tenant": "acme", **claims}
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})


def test_good_token_is_accepted(gateway: GatewayProc, issuer: Issuer) -> None:
    assert post(gateway.url("acme-sso"), issuer.token("k1", tenant="acme")).status_code == 200


@pytest.mark.parametrize(
    "case",
    ["future-nbf", "future-iat-and-nbf", "no-exp", "no-sub", "stranger-key", "other-tenant", "empty-bearer"],
)
def test_bad_tokens_are_refused(gateway: GatewayProc, issuer: Issuer, case: str) -> None:
    now = int(time.time())
    tokens = {
        "future-nbf": lambda: issuer.token("k1", tenant="acme", nbf=now + 600),
        "future-iat-and-nbf": lambda: issuer.token("k1", tenant="acme", iat=now + 600, nbf=now + 600),
        "no-exp": lambda: jwt.encode(
            {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "tenant": "acme"}, issuer.keys["k1"], "RS256", {"kid": "k1"}
        ),
        "no-sub": lambda: jwt.encode(
            {"iss": ISSUER, "aud": AUDIENCE, "exp": now + 300, "tenant": "acme"},
            issuer.keys["k1"],
            "RS256",
            {"kid": "k1"},
        ),
        "stranger-key": lambda: stranger_token(),
        "other-tenant": lambda: issuer.token("k1", tenant="globex"),
        "empty-bearer": lambda: "",
    }
    response = post(gateway.url("acme-sso"), tokens[case]())
    assert response.status_code in (401, 403), (case, response.status_code, response.text)
    error = response.json()["error"]
    assert error["message"] and "Traceback" not in response.text
    if response.status_code == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "path",
    [
        "/../acme-dev/mcp",
        "/open/../acme-dev/mcp",
        "/open%2F..%2Facme-dev/mcp",
        "/%2e%2e/acme-dev/mcp",
        "/acme-dev%2Fmcp",
        "/acme%2Ddev/mcp",
        "/acme\u2010dev/mcp",  # U+2010 HYPHEN, looks like '-'
        "/\u0430cme-dev/mcp",  # Cyrillic a
        "/ACME-DEV/mcp",
        "/acme-dev%00/mcp",
        "/open/mcp/../../acme-dev/mcp",
        "//acme-dev/mcp",
    ],
)
def test_profile_path_tricks_never_open_another_profile(gateway: GatewayProc, path: str) -> None:
    # `open` (tenant globex) needs no credentials; `acme-dev` needs an acme key. No spelling of
    # a path may reach acme-dev without one.
    with httpx.Client(timeout=10) as http:
        request = http.build_request("POST", gateway.base, json=rpc("tools/list"), headers=HEADERS)
        # Non-ASCII characters travel percent-encoded as UTF-8, as a client sends them.
        request.url = request.url.copy_with(raw_path=quote(path, safe="/%.").encode())
        response = http.send(request)
    assert response.status_code in (400, 401, 404, 405), (path, response.status_code, response.text[:200])
    assert "Traceback" not in response.text
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        assert "error" in body or "detail" in body, body


def test_oversized_headers_are_refused_cleanly(gateway: GatewayProc) -> None:
    """Request heads over 64 KiB get 431 before the app sees them (mcp_adapter/header_limit.py)."""
    many = {f"X-H{i}": "v" * 100 for i in range(2000)}
    for extra in (
        {"Authorization": "Bearer " + "a" * 200_000},
        {"X-Padding": "p" * (8 * 1024 * 1024)},
        many,
    ):
        response = post(gateway.url("acme-dev"), **extra)
        assert response.status_code == 431, response.text[:200]
        assert response.text == "request header fields exceed 65536 bytes"
    # Also in front of the admin API and the console, and before authentication.
    assert httpx.get(f"{gateway.base}/admin/v1/tenants", headers=many, timeout=10).status_code == 431
    assert httpx.get(f"{gateway.base}/console/login", headers=many, timeout=10).status_code == 431
    # Large but sane heads pass; the gateway is unharmed.
    assert post(gateway.url("open"), **{"X-Padding": "p" * 16_000}).status_code == 200
    assert post(gateway.url("open")).status_code == 200


def test_unknown_profiles_answer_like_existing_ones(gateway: GatewayProc) -> None:
    """No profile enumeration: without a valid API key, a made-up profile id gets exactly the 401
    an existing apiKey profile gives (status, challenge, body); RFC 9728 discovery still works."""
    with gateway.admin() as admin:
        key = admin.post("/admin/v1/tenants/acme/keys", json={"name": "enum"}).json()["key"]
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")  # a real key's prefix, a wrong secret
    for token in (None, "not-a-key", tampered):
        existing = post(gateway.url("acme-dev"), token)
        for made_up in ("acme-prod", "zz-unknown"):
            unknown = post(gateway.url(made_up), token)
            assert existing.status_code == 401
            assert (unknown.status_code, unknown.json()) == (existing.status_code, existing.json())
            assert unknown.headers["www-authenticate"] == existing.headers["www-authenticate"]
    # A valid key's holder is told the truth, and may still use its own profile.
    assert post(gateway.url("zz-unknown"), key).status_code == 404
    assert "unknown profile" in post(gateway.url("zz-unknown"), key).json()["error"]["message"]
    assert post(gateway.url("acme-dev"), key).status_code == 200
    # OIDC profiles still point clients to their RFC 9728 metadata.
    sso = post(gateway.url("acme-sso"))
    assert sso.status_code == 401
    challenge = sso.headers["www-authenticate"]
    metadata_url = challenge.split('resource_metadata="', 1)[1].split('"', 1)[0]
    metadata = httpx.get(metadata_url, timeout=10).json()
    assert metadata["resource"] == gateway.url("acme-sso")
