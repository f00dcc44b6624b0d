"""auth/__init__.py and auth/apikeys.py in process: key format, lookup, hash check, revocation,
expiry, tenant and profile scope, and which header carries the key (mutation-tested)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from mcp_gateway.auth import Authenticator, AuthFailure, Principal, _credential
from mcp_gateway.auth.apikeys import KEY_SCHEME, PREFIX_LEN, ApiKeyRecord, KeyHasher, key_prefix, new_key
from mcp_gateway.auth.secret_keys import SecretKeyTable
from mcp_gateway.config import Profile
from mcp_gateway.store.memory import MemoryStore
from starlette.datastructures import Headers

HASHER = KeyHasher(b"pepper-0123456789abcdef")


def profile(pid: str, tenant: str = "acme", mode: str = "apiKey") -> Profile:
    return Profile(id=pid, tenant=tenant, upstreams=[{"name": "u", "url": "http://u/mcp"}], auth={"mode": mode})


def bearer(key: str) -> Headers:
    return Headers({"authorization": f"Bearer {key}"})


async def keyed(**fields: object) -> tuple[Authenticator, str, ApiKeyRecord]:
    store = MemoryStore()
    key, record = new_key(HASHER, "acme", [], "ci")
    for name, value in fields.items():
        setattr(record, name, value)
    await store.insert_key(record)
    return Authenticator(store, HASHER), key, record


def test_key_format_and_prefix() -> None:
    key, record = new_key(HASHER, "acme", ["dev"], "ci", None)
    scheme, prefix, secret = key.split("_", 2)
    assert scheme == KEY_SCHEME == "mcpk" and len(prefix) == PREFIX_LEN == 12 and len(secret) >= 40
    assert record.prefix == prefix and key_prefix(key) == prefix
    assert record.key_hash == HASHER.hash(key) and len(record.key_hash) == 64 and key not in record.key_hash
    assert (record.tenant, record.profiles, record.name, record.expires_at) == ("acme", ["dev"], "ci", None)
    assert new_key(HASHER, "acme", [])[1].id != record.id
    for bad in ("mcpk_short_x", f"other_{prefix}_x", f"mcpk_{prefix}_", f"mcpk_{prefix}", "nope"):
        assert key_prefix(bad) is None, bad
    assert key_prefix(f"mcpk_{prefix}_with_underscores") == prefix


def test_the_pepper_keys_the_hash() -> None:
    with pytest.raises(ValueError) as short:
        KeyHasher(b"short")
    assert str(short.value) == "the API key pepper must be at least 16 bytes"
    KeyHasher(b"x" * 16)  # the minimum
    assert KeyHasher(b"y" * 16).hash("k") != KeyHasher(b"x" * 16).hash("k")
    assert HASHER.matches("k", HASHER.hash("k")) and not HASHER.matches("k", HASHER.hash("j"))


def test_a_record_is_usable_until_revoked_or_expired() -> None:
    now = datetime.now(UTC)
    record = new_key(HASHER, "acme", [])[1]
    assert record.usable_at(now)
    record.expires_at = now
    assert not record.usable_at(now) and record.usable_at(now - timedelta(seconds=1))
    record.expires_at, record.revoked_at = None, now
    assert not record.usable_at(now)
    public = record.public()
    assert "key_hash" not in public and "keyHash" not in public
    assert public["revokedAt"] == now.isoformat() and public["expiresAt"] is None
    assert public["createdAt"] == record.created_at.isoformat() and public["prefix"] == record.prefix


def test_the_key_comes_from_bearer_or_x_api_key() -> None:
    assert _credential(Headers({"authorization": "Bearer  abc "})) == "abc"
    assert _credential(Headers({"authorization": "bearer abc"})) == "abc"
    assert _credential(Headers({"authorization": "Basic abc"})) is None
    assert _credential(Headers({"authorization": "Bearer  "})) is None
    assert _credential(Headers({"x-api-key": "k"})) == "k"
    assert _credential(Headers({"authorization": "Basic x", "x-api-key": "k"})) == "k"
    assert _credential(Headers({})) is None


async def test_a_valid_key_names_its_caller() -> None:
    auth, key, record = await keyed()
    principal = await auth.authenticate(profile("dev"), bearer(key), "")
    assert principal == Principal("apiKey", "acme", f"key:{record.id}")
    open_principal = await auth.authenticate(profile("dev", mode="none"), Headers({}), "")
    assert open_principal == Principal("none", "acme", "anonymous")


async def refused(auth: Authenticator, prof: Profile, headers: Headers) -> AuthFailure:
    with pytest.raises(AuthFailure) as failure:
        await auth.authenticate(prof, headers, "")
    return failure.value


async def test_missing_unknown_forged_revoked_and_expired_keys_are_401() -> None:
    auth, key, record = await keyed()
    missing = await refused(auth, profile("dev"), Headers({}))
    assert (missing.status, missing.challenge) == (401, 'Bearer realm="mcp-gateway"')
    assert "needs an API key" in missing.message
    invalid = 'Bearer realm="mcp-gateway", error="invalid_token"'
    unknown = await refused(auth, profile("dev"), bearer(f"mcpk_{'0' * 12}_secret"))
    assert (unknown.status, unknown.challenge, unknown.message) == (401, invalid, "the API key is not valid")
    forged = await refused(auth, profile("dev"), bearer(key[:-2] + "zz"))
    assert (forged.status, forged.challenge, forged.message) == (401, invalid, "the API key is not valid")
    garbage = await refused(auth, profile("dev"), bearer("not-a-key"))
    assert (garbage.status, garbage.challenge) == (401, invalid)
    assert str(garbage) == garbage.message  # what a log line or traceback shows

    record.revoked_at = datetime.now(UTC)
    revoked = await refused(auth, profile("dev"), bearer(key))
    assert (revoked.status, revoked.challenge) == (401, invalid) and "revoked or expired" in revoked.message
    record.revoked_at, record.expires_at = None, datetime.now(UTC) - timedelta(seconds=1)
    assert (await refused(auth, profile("dev"), bearer(key))).status == 401


async def test_a_key_opens_only_its_tenants_and_listed_profiles() -> None:
    auth, key, record = await keyed(profiles=["dev"])
    assert (await auth.authenticate(profile("dev"), bearer(key), "")).tenant == "acme"
    other_profile = await refused(auth, profile("prod"), bearer(key))
    assert other_profile.status == 403 and "'prod'" in other_profile.message and other_profile.challenge is None
    other_tenant = await refused(auth, profile("dev", tenant="globex"), bearer(key))
    assert other_tenant.status == 403
    record.profiles = []
    assert (await auth.authenticate(profile("prod"), bearer(key), "")).caller == f"key:{record.id}"


def test_the_admin_api_sees_every_field_but_the_hash() -> None:
    created = datetime(2026, 12, 1, tzinfo=UTC)
    record = ApiKeyRecord(
        "id-1", "abcdef012345", "h", "acme", ["dev"], "ci", created + timedelta(days=1), None, created, {"team": "x"}
    )
    assert record.public() == {
        "id": "id-1",
        "prefix": "abcdef012345",
        "tenant": "acme",
        "profiles": ["dev"],
        "name": "ci",
        "labels": {"team": "x"},
        "expiresAt": "2026-12-02T00:00:00+00:00",
        "revokedAt": None,
        "createdAt": "2026-12-01T00:00:00+00:00",
    }


def test_a_new_key_carries_32_random_bytes_and_its_record_the_given_attributes() -> None:
    expires = datetime(2027, 1, 1, tzinfo=UTC)
    key, record = new_key(HASHER, "acme", ["dev"], expires_at=expires)
    assert len(key.split("_", 2)[2]) == 43  # token_urlsafe(32)
    assert (record.name, record.expires_at, record.tenant, record.profiles) == ("", expires, "acme", ["dev"])


async def test_an_unknown_profile_is_refused_like_a_key_profile() -> None:
    auth = Authenticator(MemoryStore(), HASHER)
    with pytest.raises(AuthFailure) as missing:
        await auth.unknown_profile(Headers({}))
    assert (missing.value.status, missing.value.challenge) == (401, 'Bearer realm="mcp-gateway"')
    with pytest.raises(AuthFailure) as bad:
        await auth.unknown_profile(Headers({"authorization": "Bearer mcpk_abcdef012345_nope"}))
    assert (bad.value.status, bad.value.message) == (401, "the API key is not valid")


async def test_refusals_tell_the_client_what_is_wrong() -> None:
    store = MemoryStore()
    auth = Authenticator(store, HASHER)
    with pytest.raises(AuthFailure) as missing:
        await auth.unknown_profile(Headers({}))
    assert missing.value.message == "this profile needs an API key: send 'Authorization: Bearer <key>'"
    key, record = new_key(HASHER, "acme", [], expires_at=datetime.now(UTC) - timedelta(seconds=1))
    await store.insert_key(record)
    with pytest.raises(AuthFailure) as expired:
        await auth.unknown_profile(Headers({"x-api-key": key}))
    assert expired.value.message == "the API key is revoked or expired"


async def test_keys_from_secrets_open_their_tenants_profiles() -> None:
    table = SecretKeyTable(HASHER)
    table.replace("ns/keys", "acme", {"ci": "ci-key-0123456789abcdef"})
    auth = Authenticator(MemoryStore(), HASHER, table)
    await auth.unknown_profile(Headers({"x-api-key": "ci-key-0123456789abcdef"}))  # valid: no failure


async def test_a_key_from_a_secret_carries_its_labels_to_policy_and_audit() -> None:
    table = SecretKeyTable(HASHER)
    table.replace("ns/keys", "acme", {"ci": "ci-key-0123456789abcdef"}, {"ci": {"team": "payments"}})
    auth = Authenticator(MemoryStore(), HASHER, table)
    principal = await auth.authenticate(profile("dev"), bearer("ci-key-0123456789abcdef"), "")
    assert principal.kind == "apiKey" and principal.caller == "secret:ns/keys/ci"
    expected = {
        "keyId": "secret:ns/keys/ci",
        "keyName": "ci",
        "keySecretRef": "ns/keys",
        "keyLabels": {"team": "payments"},
    }
    assert principal.claims == expected and principal.identity == expected


async def test_a_stored_key_gives_policy_and_audit_its_id_name_and_labels() -> None:
    auth, key, record = await keyed(labels={"team": "payments"})
    principal = await auth.authenticate(profile("dev"), bearer(key), "")
    expected = {"keyId": record.id, "keyName": "ci", "keyLabels": {"team": "payments"}}
    assert principal.claims == expected and principal.identity == expected


def both(pid: str = "both") -> Profile:
    """A profile accepting API keys and OIDC tokens (the issuer is never reached by these tests)."""
    oidc = {"issuer": "https://idp.invalid", "audience": "mcp", "jwksUrl": "https://idp.invalid/jwks"}
    auth = {"methods": ["apiKey", "oidc"], "oidc": oidc}
    return Profile(id=pid, tenant="acme", upstreams=[{"name": "u", "url": "http://u/mcp"}], auth=auth)


async def test_a_profile_with_both_methods_tells_a_key_from_a_token_by_its_shape() -> None:
    auth, key, record = await keyed()
    metadata = "https://gw/.well-known/oauth-protected-resource/both/mcp"
    principal = await auth.authenticate(both(), bearer(key), metadata)
    assert (principal.kind, principal.caller) == ("apiKey", f"key:{record.id}")

    with pytest.raises(AuthFailure) as missing:
        await auth.authenticate(both(), Headers({}), metadata)
    assert missing.value.status == 401
    assert missing.value.challenge == f'Bearer realm="mcp-gateway", resource_metadata="{metadata}"'
    assert "API key" in missing.value.message and "OAuth bearer token from https://idp.invalid" in missing.value.message

    with pytest.raises(AuthFailure) as bad_key:  # not JWT-shaped: judged as an API key only
        await auth.authenticate(both(), bearer("not-a-key"), metadata)
    assert (bad_key.value.status, bad_key.value.message) == (401, "the API key is not valid")
    assert (
        bad_key.value.challenge == f'Bearer realm="mcp-gateway", resource_metadata="{metadata}", error="invalid_token"'
    )

    with pytest.raises(AuthFailure) as bad_token:  # JWT-shaped: judged as a token only
        await auth.authenticate(both(), bearer("not.a.token"), metadata)
    assert bad_token.value.status == 401 and "API key" not in bad_token.value.message
    assert bad_token.value.challenge == f'Bearer resource_metadata="{metadata}", error="invalid_token"'
