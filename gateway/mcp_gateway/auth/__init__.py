"""Who is calling, and may they use this profile?

`Authenticator.authenticate()` returns a `Principal` or raises `AuthFailure`
(401 with `WWW-Authenticate` when the credential is missing or bad, 403 when
it is valid but not for this profile). A credential of tenant A never opens a
profile of tenant B.
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
from mcp_gateway.config import Profile
from mcp_gateway.store.base import Store

log = logging.getLogger("mcp_gateway.auth")


@dataclass(frozen=True)
class Principal:
    kind: str  # apiKey | oidc | none
    tenant: str
    caller: str  # "key:<id>", "sub:<subject>" or "anonymous"
    scopes: tuple[str, ...] = ()
    # What policy rules and audit may read about the caller: the verified token's claims
    # (OIDC) or the key's attributes (API keys). Never the credential itself.
    claims: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)


class AuthFailure(Exception):
    def __init__(self, status: int, message: str, challenge: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.challenge = challenge


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
        mode = profile.auth.mode
        if mode == "none":
            return Principal("none", profile.tenant, "anonymous")
        credential = _credential(headers)
        if mode == "apiKey":
            return await self._api_key(profile, credential)
        return await self._oidc(profile, credential, metadata_url)

    async def _api_key(self, profile: Profile, key: str | None) -> Principal:
        tenant, caller, profiles = await self._key_owner(key)
        if tenant != profile.tenant or (profiles and profile.id not in profiles):
            raise AuthFailure(403, f"this API key is not allowed to use profile {profile.id!r}")
        return Principal("apiKey", tenant, caller)

    async def unknown_profile(self, headers: Headers) -> None:
        """Refuse a request for a profile that does not exist exactly as an `apiKey` profile would.

        Without a valid API key the answer is the same 401 (message and challenge) whether the
        profile exists or not, so profile ids cannot be enumerated; returns for a valid key of
        any tenant (its holder then learns the profile does not exist).
        """
        await self._key_owner(_credential(headers))

    async def _key_owner(self, key: str | None) -> tuple[str, str, Sequence[str]]:
        """(tenant, caller, profiles the key is limited to) of a valid API key; AuthFailure(401) otherwise."""
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
            return found.tenant, found.caller, ()
        if not self.hasher.matches(key, record.key_hash):
            raise AuthFailure(401, "the API key is not valid", bad)
        if not record.usable_at(datetime.now(UTC)):
            raise AuthFailure(401, "the API key is revoked or expired", bad)
        return record.tenant, f"key:{record.id}", record.profiles

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
            if exc.error == "insufficient_scope":
                scopes = " ".join(verifier.settings.required_scopes)
                raise AuthFailure(403, str(exc), f'{challenge}, error="insufficient_scope", scope="{scopes}"') from exc
            raise AuthFailure(401, str(exc), f'{challenge}, error="invalid_token"') from exc
        tenant_claim = verifier.settings.tenant_claim
        if tenant_claim and claims.get(tenant_claim) != profile.tenant:
            raise AuthFailure(403, f"the token's tenant does not own profile {profile.id!r}")
        return Principal("oidc", profile.tenant, f"sub:{claims['sub']}", tuple(scopes_of(claims)), claims=dict(claims))
