"""Who is calling, and may they use this profile?

`Authenticator.authenticate()` returns a `Principal` or raises `AuthFailure`
(401 with `WWW-Authenticate` when the credential is missing or bad, 403 when
it is valid but not for this profile). A credential of tenant A never opens a
profile of tenant B.

A profile accepts one method (`auth.mode`) or several (`auth.methods: [apiKey, oidc]`). With
several, a bearer credential shaped like a JWT (three dot-separated parts) is checked as an
OIDC token and anything else as an API key, so each credential is checked once, by the one
method it can belong to; a 401 then names every accepted method, and its challenge carries the
RFC 9728 metadata URL so OAuth clients still discover the authorization server.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import Headers

from mcp_gateway.auth.apikeys import KeyHasher, key_prefix
from mcp_gateway.auth.oidc import OidcVerifier, TokenError, scopes_of
from mcp_gateway.auth.secret_keys import SecretKeyTable
from mcp_gateway.config import IdentityClaims, Profile
from mcp_gateway.store.base import Store

log = logging.getLogger("mcp_gateway.auth")


@dataclass(frozen=True)
class Principal:
    kind: str  # apiKey | oidc | none
    tenant: str
    caller: str  # "key:<id>", "sub:<subject>" or "anonymous"
    scopes: tuple[str, ...] = ()
    # What policy rules and audit may read about the caller: the verified token's claims
    # (OIDC) or the key's attributes (API keys: keyId, keyName, keyLabels). Never the credential itself.
    claims: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    # Who the caller is, for the audit log: sub, groups, email (from the profile's
    # `identityClaims`), or the key's id and name. Empty for an anonymous profile.
    identity: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)


def oidc_identity(claims: Mapping[str, Any], names: IdentityClaims) -> dict[str, Any]:
    """sub, groups and email from the configured claims; a claim of the wrong type is left out."""
    identity: dict[str, Any] = {"sub": str(claims.get(names.subject, claims["sub"]))}
    groups = claims.get(names.groups)
    if isinstance(groups, str):
        groups = [groups]
    if isinstance(groups, list):
        identity["groups"] = [g for g in groups if isinstance(g, str)][:MAX_GROUPS]
    email = claims.get(names.email)
    if isinstance(email, str):
        identity["email"] = email
    return identity


# Audit records stay small whatever the provider puts in a token.
MAX_GROUPS = 64


@dataclass(frozen=True)
class KeyOwner:
    tenant: str
    caller: str
    profiles: Sequence[str]  # the profiles the key is limited to (empty: every profile of its tenant)
    claims: Mapping[str, Any]


class AuthFailure(Exception):
    """401/403, or 503 when the credential could not be checked (`retry_after` seconds)."""

    def __init__(self, status: int, message: str, challenge: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.challenge = challenge
        self.retry_after = retry_after


# Seconds a client waits before retrying when the identity provider could not be reached.
IDP_RETRY_AFTER = 10


def _jwt_shaped(credential: str) -> bool:
    return credential.count(".") == 2


def _credential(headers: Headers) -> str | None:
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return headers.get("x-api-key") or None


class Authenticator:
    """`allow_private_jwks` reads `gateway.allowPrivateJwks` of the current routing config."""

    def __init__(
        self,
        store: Store,
        hasher: KeyHasher,
        secret_keys: SecretKeyTable | None = None,
        allow_private_jwks: Callable[[], bool] = lambda: False,
    ) -> None:
        self.store = store
        self.hasher = hasher
        self.secret_keys = secret_keys or SecretKeyTable(hasher)
        self.allow_private_jwks = allow_private_jwks
        self._verifiers: dict[str, OidcVerifier] = {}  # profile id -> its verifier (and JWKS cache)

    async def authenticate(self, profile: Profile, headers: Headers, metadata_url: str) -> Principal:
        accepted = profile.auth.accepted
        if not accepted:
            return Principal("none", profile.tenant, "anonymous")
        credential = _credential(headers)
        if len(accepted) > 1:
            return await self._any_of(profile, credential, metadata_url)
        if accepted[0] == "apiKey":
            return await self._api_key(profile, credential)
        return await self._oidc(profile, credential, metadata_url)

    async def _any_of(self, profile: Profile, credential: str | None, metadata_url: str) -> Principal:
        """API key or OIDC token on one profile: the credential's shape says which it is."""
        challenge = f'Bearer realm="mcp-gateway", resource_metadata="{metadata_url}"'
        if not credential:
            oidc = profile.auth.oidc
            assert oidc is not None  # config: two distinct methods, so oidc is one, and it has settings
            message = (
                "this profile accepts an API key ('Authorization: Bearer <key>' or 'X-API-Key: <key>') "
                f"or an OAuth bearer token from {oidc.issuer} (see the resource_metadata URL in WWW-Authenticate)"
            )
            raise AuthFailure(401, message, challenge)
        if _jwt_shaped(credential):
            return await self._oidc(profile, credential, metadata_url)
        try:
            return await self._api_key(profile, credential)
        except AuthFailure as failure:
            if failure.status == 401:  # still point OAuth clients at the metadata
                failure.challenge = f'{challenge}, error="invalid_token"'
            raise

    async def _api_key(self, profile: Profile, key: str | None) -> Principal:
        owner = await self._key_owner(key)
        if owner.tenant != profile.tenant or (owner.profiles and profile.id not in owner.profiles):
            raise AuthFailure(403, f"this API key is not allowed to use profile {profile.id!r}")
        return Principal("apiKey", owner.tenant, owner.caller, claims=owner.claims, identity=owner.claims)

    async def unknown_profile(self, headers: Headers) -> None:
        """Refuse a request for a profile that does not exist exactly as an `apiKey` profile would.

        Without a valid API key the answer is the same 401 (message and challenge) whether the
        profile exists or not, so profile ids cannot be enumerated; returns for a valid key of
        any tenant (its holder then learns the profile does not exist).
        """
        await self._key_owner(_credential(headers))

    async def _key_owner(self, key: str | None) -> KeyOwner:
        """The owner of a valid API key; AuthFailure(401) otherwise."""
        challenge = 'Bearer realm="mcp-gateway"'
        if not key:
            raise AuthFailure(401, "this profile needs an API key: send 'Authorization: Bearer <key>'", challenge)
        bad = f'{challenge}, error="invalid_token"'
        prefix = key_prefix(key)
        record = await self.store.key_by_prefix(prefix) if prefix else None
        if record is None:
            # A key from one of the tenants' key Secrets (valid for every profile of its tenant).
            found = self.secret_keys.lookup(key)
            if found is None:
                raise AuthFailure(401, "the API key is not valid", bad)
            from_secret = {
                "keyId": found.caller,
                "keyName": found.name,
                "keySecretRef": found.secret,
                "keyLabels": dict(found.labels),
            }
            return KeyOwner(found.tenant, found.caller, (), from_secret)
        if not self.hasher.matches(key, record.key_hash):
            raise AuthFailure(401, "the API key is not valid", bad)
        if not record.usable_at(datetime.now(UTC)):
            raise AuthFailure(401, "the API key is revoked or expired", bad)
        claims: dict[str, Any] = {"keyId": record.id, "keyName": record.name, "keyLabels": record.labels}
        return KeyOwner(record.tenant, f"key:{record.id}", record.profiles, claims)

    def _verifier(self, profile: Profile) -> OidcVerifier:
        """The profile's verifier, replaced (JWKS cache and all) when its settings change."""
        settings = profile.auth.oidc
        assert settings is not None
        private = self.allow_private_jwks()
        verifier = self._verifiers.get(profile.id)
        if verifier is None or not verifier.serves(settings, private):
            verifier = self._verifiers[profile.id] = OidcVerifier(settings, private)
        return verifier

    async def _oidc(self, profile: Profile, token: str | None, metadata_url: str) -> Principal:
        challenge = f'Bearer resource_metadata="{metadata_url}"'
        if not token:
            raise AuthFailure(401, "this profile needs an OAuth bearer token", challenge)
        verifier = self._verifier(profile)
        try:
            claims = await verifier.verify(token)
        except TokenError as exc:
            if exc.error == "unavailable":
                raise AuthFailure(503, str(exc), retry_after=IDP_RETRY_AFTER) from exc
            if exc.error == "insufficient_scope":
                scopes = " ".join(verifier.settings.required_scopes)
                raise AuthFailure(403, str(exc), f'{challenge}, error="insufficient_scope", scope="{scopes}"') from exc
            raise AuthFailure(401, str(exc), f'{challenge}, error="invalid_token"') from exc
        tenant_claim = verifier.settings.tenant_claim
        if tenant_claim and claims.get(tenant_claim) != profile.tenant:
            raise AuthFailure(403, f"the token's tenant does not own profile {profile.id!r}")
        identity = oidc_identity(claims, verifier.settings.identity_claims)
        caller, granted = f"sub:{claims['sub']}", tuple(scopes_of(claims))
        return Principal("oidc", profile.tenant, caller, granted, claims=dict(claims), identity=identity)
