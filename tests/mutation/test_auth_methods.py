"""auth/__init__.py and auth/apikeys.py in process: a profile accepting an API key or an OIDC token,
what a caller's principal carries, the identity provider being down, and key labels
(mutation-tested)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from mcp_gateway.auth import IDP_RETRY_AFTER, Authenticator, AuthFailure, Principal
from mcp_gateway.auth.apikeys import MAX_LABEL_VALUE, MAX_LABELS, KeyHasher, check_labels, new_key
from mcp_gateway.auth.secret_keys import SecretKeyTable
from mcp_gateway.config import Profile
from mcp_gateway.store.memory import MemoryStore
from starlette.datastructures import Headers

from tests.support.jwks import Issuer, oidc_settings, running_issuer

HASHER = KeyHasher(b"pepper-0123456789abcdef")
METADATA = "https://gw/.well-known/oauth-protected-resource/both/mcp"


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with running_issuer("k1") as running:
        yield running


def both(issuer: Issuer, pid: str = "both") -> Profile:
    auth = {"methods": ["apiKey", "oidc"], "oidc": oidc_settings(issuer.url)}
    return Profile(id=pid, tenant="acme", upstreams=[{"name": "u", "url": "http://u/mcp"}], auth=auth)


def bearer(credential: str) -> Headers:
    return Headers({"authorization": f"Bearer {credential}"})


async def refused(auth: Authenticator, profile: Profile, headers: Headers) -> AuthFailure:
    with pytest.raises(AuthFailure) as failure:
        await auth.authenticate(profile, headers, METADATA)
    return failure.value


async def keyed(profiles: tuple[str, ...] = (), **labels: str) -> tuple[Authenticator, str, str]:
    store = MemoryStore()
    key, record = new_key(HASHER, "acme", list(profiles), "ci", labels=labels)
    await store.insert_key(record)
    return Authenticator(store, HASHER, allow_private_jwks=lambda: True), key, record.id


async def test_a_key_principal_carries_the_keys_attributes_never_the_key() -> None:
    auth, key, key_id = await keyed(team="blue")
    profile = Profile(id="dev", tenant="acme", upstreams=[{"name": "u", "url": "http://u/mcp"}])
    principal = await auth.authenticate(profile, bearer(key), METADATA)
    attributes = {"keyId": key_id, "keyName": "ci", "keyLabels": {"team": "blue"}}
    assert principal == Principal("apiKey", "acme", f"key:{key_id}")
    assert principal.claims == attributes and principal.identity == attributes
    table = SecretKeyTable(HASHER)
    table.replace("ns/keys", "acme", {"deploy": "deploy-key-0123456789abcdef"})
    from_secret = Authenticator(MemoryStore(), HASHER, table)
    principal = await from_secret.authenticate(profile, Headers({"x-api-key": "deploy-key-0123456789abcdef"}), "")
    assert principal.caller == "secret:ns/keys/deploy"
    secret_attributes = {"keyId": "secret:ns/keys/deploy", "keyName": "deploy", "keySecretRef": "ns/keys"}
    assert principal.claims == {**secret_attributes, "keyLabels": {}}  # a Secret without label annotations
    assert principal.identity == principal.claims


async def test_a_profile_with_both_methods_checks_each_credential_by_its_shape(issuer: Issuer) -> None:
    auth, key, key_id = await keyed()
    profile = both(issuer)
    by_key = await auth.authenticate(profile, bearer(key), METADATA)
    assert (by_key.kind, by_key.caller) == ("apiKey", f"key:{key_id}")
    by_token = await auth.authenticate(profile, bearer(issuer.token("k1", sub="bob")), METADATA)
    assert (by_token.kind, by_token.caller, by_token.identity) == ("oidc", "sub:bob", {"sub": "bob"})
    assert by_token.scopes == ("mcp:tools",) and by_token.claims["sub"] == "bob"


async def test_a_profile_with_both_methods_names_both_when_refusing(issuer: Issuer) -> None:
    auth, _, _ = await keyed()
    profile = both(issuer)
    challenge = f'Bearer realm="mcp-gateway", resource_metadata="{METADATA}"'
    missing = await refused(auth, profile, Headers({}))
    assert (missing.status, missing.challenge) == (401, challenge)
    assert missing.message == (
        "this profile accepts an API key ('Authorization: Bearer <key>' or 'X-API-Key: <key>') or an OAuth "
        "bearer token from https://issuer.test (see the resource_metadata URL in WWW-Authenticate)"
    )
    # A bad key still points OAuth clients at the metadata.
    bad = await refused(auth, profile, bearer("mcpk_000000000000_nope"))
    invalid = f'{challenge}, error="invalid_token"'
    assert (bad.status, bad.message, bad.challenge) == (401, "the API key is not valid", invalid)
    # A JWT-shaped credential is checked as a token only (not also as a key).
    forged = await refused(auth, profile, bearer("a.b.c"))
    assert (forged.status, forged.message) == (401, "bearer token is not a well-formed JWT")
    assert forged.challenge == f'Bearer resource_metadata="{METADATA}", error="invalid_token"'
    # A valid key for another profile: 403, with no challenge to add.
    limited, limited_key, _ = await keyed(profiles=("other",))
    other = await refused(limited, profile, bearer(limited_key))
    assert (other.status, other.challenge) == (403, None)


async def test_an_unreachable_identity_provider_is_503_with_retry_after() -> None:
    with running_issuer("k1") as own:
        own.failing = 502
        auth = Authenticator(MemoryStore(), HASHER, allow_private_jwks=lambda: True)
        failure = await refused(auth, both(own), bearer(own.token("k1")))
        assert (failure.status, failure.retry_after, failure.challenge) == (503, IDP_RETRY_AFTER, None)
        assert IDP_RETRY_AFTER == 10 and failure.message.startswith("cannot check the token now")


def test_labels_are_checked_and_sorted() -> None:
    assert check_labels({"team": "blue", "a": "", "env.tier-1_x": "x" * MAX_LABEL_VALUE}) == {
        "a": "",
        "env.tier-1_x": "x" * MAX_LABEL_VALUE,
        "team": "blue",
    }
    assert list(check_labels({"b": "1", "a": "2"})) == ["a", "b"]
    many = {f"l{i}": "v" for i in range(MAX_LABELS)}
    assert check_labels(many) == dict(sorted(many.items())) and MAX_LABELS == 16
    with pytest.raises(ValueError) as too_many:
        check_labels({**many, "one-more": "v"})
    assert str(too_many.value) == "at most 16 labels per key (17 given)"
    assert check_labels({"n" * 63: "v"}) == {"n" * 63: "v"}


@pytest.mark.parametrize("name", ["", "-team", "team-", "te am", "n" * 64, "tëam", 7])
def test_a_bad_label_name_is_refused_saying_how_to_write_one(name: Any) -> None:
    with pytest.raises(ValueError) as bad:
        check_labels({name: "v"})
    assert str(bad.value) == (
        f"label name {str(name)[:80]!r}: use 1-63 letters, digits, '-', '_' or '.', "
        "starting and ending with a letter or digit"
    )


def test_a_long_bad_label_name_is_quoted_short() -> None:
    with pytest.raises(ValueError) as bad:
        check_labels({"-" * 200: "v"})
    assert f"label name {'-' * 80!r}:" in str(bad.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (5, "label 'team': the value must be a string"),
        ("x" * (MAX_LABEL_VALUE + 1), "label 'team': the value must be printable and at most 128 characters"),
        ("a\nb", "label 'team': the value must be printable and at most 128 characters"),
    ],
)
def test_a_bad_label_value_is_refused(value: Any, message: str) -> None:
    with pytest.raises(ValueError) as bad:
        check_labels({"team": value})
    assert str(bad.value) == message and MAX_LABEL_VALUE == 128
