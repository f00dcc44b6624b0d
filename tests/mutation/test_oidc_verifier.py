"""auth/oidc.py in process against a JWKS server on loopback (tests/support/jwks.py): token
checks, required claims and scopes, JWKS caching and refetch limits, and which JWKS URLs are
fetched at all (mutation-tested)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from mcp_gateway.auth import Authenticator, AuthFailure, Principal
from mcp_gateway.auth.apikeys import KeyHasher
from mcp_gateway.auth.oidc import OidcVerifier, TokenError, jwks_url_problem, scopes_of
from mcp_gateway.config import OidcSettings, Profile
from mcp_gateway.store.memory import MemoryStore
from starlette.datastructures import Headers

from tests.support.jwks import AUDIENCE, ISSUER, Issuer, oidc_settings, running_issuer


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with running_issuer("k1") as running:
        yield running


def verifier(issuer: Issuer, **extra: Any) -> OidcVerifier:
    return OidcVerifier(OidcSettings.model_validate(oidc_settings(issuer.url, **extra)), allow_private_jwks=True)


async def rejected(v: OidcVerifier, token: str) -> TokenError:
    with pytest.raises(TokenError) as failure:
        await v.verify(token)
    return failure.value


async def test_a_valid_token_gives_its_claims(issuer: Issuer) -> None:
    claims = await verifier(issuer).verify(issuer.token("k1", sub="bob"))
    assert (claims["sub"], claims["iss"], claims["aud"]) == ("bob", ISSUER, AUDIENCE)


async def test_each_bad_token_says_why(issuer: Issuer) -> None:
    v = verifier(issuer, leewaySeconds=5)
    now = int(time.time())
    cases = {
        "bearer token is not a well-formed JWT": "garbage",
        "token has expired": issuer.token("k1", exp=now - 60),
        "token audience does not match this gateway": issuer.token("k1", aud="other"),
        "token issuer is not trusted for this profile": issuer.token("k1", iss="https://evil.test"),
        "token rejected": issuer.token("k1", sub=None, nbf=now + 600),
    }
    for message, token in cases.items():
        error = await rejected(v, token)
        assert str(error).startswith(message) and error.error == "invalid_token", message
    # Within the leeway an expired token still passes.
    await v.verify(issuer.token("k1", exp=now - 2))
    # A token must say when it expires and whom it is about.
    for claim in ("exp", "sub"):
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now + 60}
        del claims[claim]
        token = jwt.encode(claims, issuer.keys["k1"], algorithm="RS256", headers={"kid": "k1"})
        assert str(await rejected(v, token)) == f'token rejected: Token is missing the "{claim}" claim'


async def test_algorithm_and_key_must_be_accepted(issuer: Issuer) -> None:
    v = verifier(issuer)
    hs = jwt.encode({"sub": "x"}, "secret-secret-secret-secret-12345", algorithm="HS256")
    assert "token algorithm 'HS256' is not accepted" in str(await rejected(v, hs))
    unknown = jwt.encode({"sub": "x"}, issuer.keys["k1"], algorithm="RS256", headers={"kid": "nope"})
    assert str(await rejected(v, unknown)) == "token is signed with a key the issuer does not publish"


async def test_required_claims_and_scopes_are_insufficient_scope(issuer: Issuer) -> None:
    v = verifier(issuer, requiredScopes=["mcp:tools", "mcp:read"], requiredClaims={"team": "blue"})
    assert (await v.verify(issuer.token("k1", team="blue", scope="mcp:read mcp:tools")))["team"] == "blue"
    claim = await rejected(v, issuer.token("k1", team="red", scope="mcp:read mcp:tools"))
    assert claim.error == "insufficient_scope" and "'team'" in str(claim)
    scope = await rejected(v, issuer.token("k1", team="blue", scope="mcp:tools"))
    assert scope.error == "insufficient_scope" and str(scope) == "token lacks required scopes ['mcp:read']"
    now = int(time.time())
    scp_claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "a",
        "exp": now + 60,
        "team": "blue",
        "scp": ["mcp:tools", "mcp:read"],
    }
    scp_token = jwt.encode(scp_claims, issuer.keys["k1"], algorithm="RS256", headers={"kid": "k1"})
    assert (await v.verify(scp_token))["scp"] == ["mcp:tools", "mcp:read"]


def test_scopes_from_scope_or_scp() -> None:
    assert scopes_of({"scope": "a b"}) == ["a", "b"]
    assert scopes_of({"scp": ["a", 1]}) == ["a", "1"]
    assert scopes_of({"scope": "a", "scp": ["b"]}) == ["a"]
    assert scopes_of({"scp": 5}) == [] and scopes_of({}) == []


async def test_jwks_is_cached_and_unknown_kids_refetch_at_most_once_per_interval() -> None:
    with running_issuer("k1") as own:
        # An interval this test never outlasts, yet shorter than the monotonic clock's reading (time since
        # boot, past a minute on any machine running the suite): it counts from the last fetch.
        v = verifier(own, jwksMinRefetchSeconds=60)
        await v.verify(own.token("k1"))
        await v.verify(own.token("k1"))
        assert own.fetches == 1
        own.add_key("k2")
        for _ in range(3):
            await rejected(v, own.token("k2"))
        assert own.fetches == 1  # unknown kid, but the interval has not passed
        eager = verifier(own, jwksMinRefetchSeconds=0)
        await eager.verify(own.token("k1"))
        fetched = own.fetches
        await eager.verify(own.token("k2"))
        assert own.fetches == fetched  # k2 was already in that fetch
        own.add_key("k3")  # the issuer rotates: a token of the new key makes the cache refetch
        assert (await eager.verify(own.token("k3", sub="rotated")))["sub"] == "rotated"
        assert own.fetches == fetched + 1
        stale = verifier(own, jwksCacheSeconds=0.001)
        await stale.verify(own.token("k1"))
        time.sleep(0.01)
        before = own.fetches
        await stale.verify(own.token("k1"))
        assert own.fetches == before + 1  # past the cache lifetime: fetched again


async def test_unusable_jwks_entries_are_skipped_and_named(caplog: pytest.LogCaptureFixture) -> None:
    with running_issuer("k1") as own:
        good = own.jwks()["keys"]
        own.jwks = lambda: {"keys": [{"kid": "broken", "kty": "RSA", "n": "AQAB"}, *good]}  # type: ignore[method-assign]
        await verifier(own).verify(own.token("k1"))
        (warning,) = [
            r.getMessage() for r in caplog.records if r.name == "mcp_gateway.auth.oidc" and r.levelname == "WARNING"
        ]
        assert warning.startswith(f"skipping unusable JWKS key broken from {own.url}: ") and not warning.endswith(
            ": None"
        )
        assert len(warning) > len(f"skipping unusable JWKS key broken from {own.url}: ")
        # A document without keys publishes none (and breaks nothing).
        own.jwks = lambda: {}  # type: ignore[method-assign]
        assert "does not publish" in str(await rejected(verifier(own), own.token("k1")))


async def test_verifier_serves_only_its_settings(issuer: Issuer) -> None:
    v = verifier(issuer)
    same = OidcSettings.model_validate(oidc_settings(issuer.url))
    assert v.serves(v.settings, True) and v.serves(same, True)
    assert not v.serves(same, False)
    assert not v.serves(OidcSettings.model_validate(oidc_settings(issuer.url, leewaySeconds=1)), True)


def test_which_jwks_urls_are_fetched() -> None:
    assert jwks_url_problem("https://idp.example.com/jwks", False) is None
    assert jwks_url_problem("http://127.0.0.1:8/jwks", True) is None
    assert jwks_url_problem("http://localhost:8/jwks", True) is None
    assert jwks_url_problem("http://[::1]:8/jwks", True) is None
    for url, private in [
        ("http://127.0.0.1:8/jwks", False),
        ("http://idp.example.com/jwks", True),
        ("ftp://idp.example.com/jwks", True),
        ("https:///jwks", False),
    ]:
        problem = jwks_url_problem(url, private)
        assert problem is not None and "must be an https:// URL" in problem and url in problem, url
    assert jwks_url_problem("http://idp.example.com/jwks", True) == (
        "jwksUrl 'http://idp.example.com/jwks' is not fetched: it must be an https:// URL (plain http is allowed "
        "only for a loopback issuer, with gateway.allowPrivateJwks: true in the routing config)"
    )


async def test_a_blocked_jwks_url_is_never_fetched(issuer: Issuer, caplog: pytest.LogCaptureFixture) -> None:
    before = issuer.fetches
    loopback = OidcVerifier(OidcSettings.model_validate(oidc_settings(issuer.url)), allow_private_jwks=False)
    assert "does not publish" in str(await rejected(loopback, issuer.token("k1")))
    blocked = [r for r in caplog.records if getattr(r, "event", None) == "jwks_blocked"]
    assert [r.getMessage() for r in blocked] == [
        f"cannot fetch JWKS from {issuer.url}: {jwks_url_problem(issuer.url, False)} (a private or loopback "
        "issuer needs gateway.allowPrivateJwks: true in the routing config)"
    ]
    https_private = issuer.url.replace("http://", "https://")
    guarded = OidcVerifier(OidcSettings.model_validate(oidc_settings(https_private)), allow_private_jwks=False)
    assert "does not publish" in str(await rejected(guarded, issuer.token("k1")))
    assert issuer.fetches == before
    # The egress guard refused the address; its hint (an adapter setting) gives way to the gateway's.
    blocked = [r.getMessage() for r in caplog.records if getattr(r, "event", None) == "jwks_blocked"]
    assert blocked[1:] == [
        f"cannot fetch JWKS from {https_private}: 127.0.0.1 resolves to the non-public address 127.0.0.1 "
        "(a private or loopback issuer needs gateway.allowPrivateJwks: true in the routing config)"
    ]


def oidc_profile(issuer: Issuer, **extra: Any) -> Profile:
    auth = {"mode": "oidc", "oidc": oidc_settings(issuer.url, **extra)}
    return Profile(id="sso", tenant="acme", upstreams=[{"name": "u", "url": "http://u/mcp"}], auth=auth)


def authenticator(private: bool = True) -> Authenticator:
    return Authenticator(MemoryStore(), KeyHasher(b"pepper-0123456789abcdef"), allow_private_jwks=lambda: private)


def bearer(token: str) -> Headers:
    return Headers({"authorization": f"Bearer {token}"})


async def auth_refused(auth: Authenticator, profile: Profile, headers: Headers) -> AuthFailure:
    with pytest.raises(AuthFailure) as failure:
        await auth.authenticate(profile, headers, "https://gw/.well-known/oauth-protected-resource/sso/mcp")
    return failure.value


async def test_the_authenticator_maps_oidc_outcomes(issuer: Issuer) -> None:
    auth = authenticator()
    profile = oidc_profile(issuer, requiredScopes=["mcp:tools", "mcp:read"], tenantClaim="org")
    metadata = "https://gw/.well-known/oauth-protected-resource/sso/mcp"
    token = issuer.token("k1", org="acme", scope="mcp:tools x mcp:read")
    principal = await auth.authenticate(profile, bearer(token), metadata)
    assert principal == Principal("oidc", "acme", "sub:alice", ("mcp:tools", "x", "mcp:read"))
    challenge = f'Bearer resource_metadata="{metadata}"'
    missing = await auth_refused(auth, profile, Headers({}))
    assert (missing.status, missing.challenge) == (401, challenge)
    assert missing.message == "this profile needs an OAuth bearer token"
    bad = await auth_refused(auth, profile, bearer("garbage"))
    assert (bad.status, bad.challenge) == (401, f'{challenge}, error="invalid_token"')
    scope = await auth_refused(auth, profile, bearer(issuer.token("k1", org="acme", scope="mcp:tools")))
    assert (scope.status, scope.message) == (403, "token lacks required scopes ['mcp:read']")
    assert scope.challenge == f'{challenge}, error="insufficient_scope", scope="mcp:tools mcp:read"'
    tenant = await auth_refused(auth, profile, bearer(issuer.token("k1", org="globex", scope="mcp:tools mcp:read")))
    assert (tenant.status, tenant.message) == (403, "the token's tenant does not own profile 'sso'")


async def test_the_authenticator_keeps_a_verifier_per_profile_until_its_settings_change(issuer: Issuer) -> None:
    private = True
    auth = Authenticator(MemoryStore(), KeyHasher(b"pepper-0123456789abcdef"), allow_private_jwks=lambda: private)
    profile = oidc_profile(issuer)
    first = auth._verifier(profile)
    assert auth._verifier(profile) is first and first.allow_private_jwks is True
    assert auth._verifier(oidc_profile(issuer)) is first  # equal settings
    changed = auth._verifier(oidc_profile(issuer, leewaySeconds=1))
    assert changed is not first and auth._verifiers["sso"] is changed
    private = False
    assert auth._verifier(oidc_profile(issuer, leewaySeconds=1)).allow_private_jwks is False
    assert authenticator()._verifier(profile) is not first


async def test_a_key_without_kid_verifies_a_token_without_kid() -> None:
    """An issuer publishing one key without a `kid` (allowed by RFC 7517) signs tokens without one."""
    with running_issuer("k1") as own:
        (published,) = own.jwks()["keys"]
        own.jwks = lambda: {"keys": [{k: v for k, v in published.items() if k != "kid"}]}  # type: ignore[method-assign]
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "plain", "exp": now + 60}
        plain = jwt.encode(claims, own.keys["k1"], algorithm="RS256")
        assert "kid" not in jwt.get_unverified_header(plain)
        assert (await verifier(own).verify(plain))["sub"] == "plain"
        # A token naming a kid is not matched to the kid-less key.
        assert "does not publish" in str(await rejected(verifier(own), own.token("k1")))


def oidc_log(caplog: pytest.LogCaptureFixture, level: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "mcp_gateway.auth.oidc" and r.levelname == level]


def fetch_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return oidc_log(caplog, "ERROR")


async def test_a_fetch_is_logged_with_its_key_count(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mcp_gateway.auth.oidc")
    with running_issuer("k1", "k2") as own:
        await verifier(own).verify(own.token("k2"))
        assert oidc_log(caplog, "INFO") == [f"fetched JWKS from {own.url}: 2 keys"]


async def test_an_issuer_that_fails_makes_tokens_wait_not_fail(caplog: pytest.LogCaptureFixture) -> None:
    """An HTTP error, a document that is not a JWKS or a closed port: 'try again later' (503), never
    'the issuer does not publish this key' (401), and the operator's log says what went wrong."""
    with running_issuer("k1") as own:
        unavailable = "cannot check the token now: the identity provider's signing keys could not be fetched"
        own.failing = 500
        down = await rejected(verifier(own), own.token("k1"))
        assert str(down) == f"{unavailable}; try again later" and down.error == "unavailable"
        assert fetch_errors(caplog) == [f"cannot fetch JWKS from {own.url}: HTTP 500"]

        own.failing = None
        own.jwks = lambda: ["k1"]  # type: ignore[method-assign,return-value]  # a JSON list, not a JWKS
        v = verifier(own)
        assert (await rejected(v, own.token("k1"))).error == "unavailable"
        assert fetch_errors(caplog)[-1] == (
            f'cannot fetch JWKS from {own.url}: the document is not a JWKS (a JSON object with a "keys" list)'
        )
        own.jwks = lambda: {"keys": "k1"}  # type: ignore[method-assign]
        assert (await rejected(verifier(own), own.token("k1"))).error == "unavailable"

        # Back up: the same verifier fetches again and trusts the key; entries that are not objects are skipped.
        del own.jwks
        good = own.jwks()["keys"]
        own.jwks = lambda: {"keys": ["junk", *good]}  # type: ignore[method-assign]
        assert (await v.verify(own.token("k1", sub="back")))["sub"] == "back"
        assert f"skipping a JWKS entry that is not a JSON object from {own.url}" in caplog.messages

        # Down again: a cached key still verifies; a key id it does not know waits for the issuer.
        v.jwks.min_refetch = 0
        own.failing = 503
        assert (await v.verify(own.token("k1", sub="cached")))["sub"] == "cached"
        own.add_key("k2")
        assert (await rejected(v, own.token("k2"))).error == "unavailable"
        url = own.url
    # The server is gone: nothing listens on its port.
    gone = await rejected(verifier(own), own.token("k1"))
    assert gone.error == "unavailable"
    assert fetch_errors(caplog)[-1] == f"cannot fetch JWKS from {url}: All connection attempts failed"


async def test_a_stalled_issuer_is_given_up_on(caplog: pytest.LogCaptureFixture) -> None:
    """A JWKS server that accepts and never answers: the fetch gives up (after 5 s) instead of holding
    every token check; httpx's timeout has no message, so the log names it."""
    with running_issuer("k1") as own:
        own.stalled = threading.Event()
        assert (await rejected(verifier(own), own.token("k1"))).error == "unavailable"
        assert fetch_errors(caplog) == [f"cannot fetch JWKS from {own.url}: ReadTimeout"]
