"""OIDC/JWT bearer tokens checked against an issuer's JWKS.

The JWKS is fetched lazily, cached, and refetched when a token names a key id
we don't know (the issuer rotated its keys) - at most once per
`min_refetch_seconds` so a flood of forged kids cannot hammer the issuer.
Only the profile's configured asymmetric algorithms are accepted; `none` and
HMAC algorithms never are (an HS256 token "signed" with the public key is the
classic confusion attack).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import httpx
import jwt
from jwt import PyJWK

from mcp_gateway.config import OidcSettings

log = logging.getLogger("mcp_gateway.auth.oidc")


class TokenError(Exception):
    """The token is not acceptable; the message is safe to show the client."""

    def __init__(self, message: str, error: str = "invalid_token") -> None:
        super().__init__(message)
        self.error = error


class JwksCache:
    def __init__(self, url: str, ttl_seconds: float = 300, min_refetch_seconds: float = 10) -> None:
        self.url = url
        self.ttl = ttl_seconds
        self.min_refetch = min_refetch_seconds
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def _fetch(self) -> None:
        self._fetched_at = time.monotonic()
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(self.url)
            response.raise_for_status()
            document = response.json()
        keys: dict[str, PyJWK] = {}
        for entry in document.get("keys", []):
            try:
                key = PyJWK.from_dict(entry)
            except (jwt.PyJWTError, ValueError, KeyError) as exc:
                log.warning("skipping unusable JWKS key %s from %s: %s", entry.get("kid"), self.url, exc)
                continue
            keys[entry.get("kid", "")] = key
        self._keys = keys
        log.info("fetched JWKS from %s: %d keys", self.url, len(keys))

    async def key(self, kid: str) -> PyJWK | None:
        async with self._lock:
            stale = time.monotonic() - self._fetched_at > self.ttl
            unknown = kid not in self._keys and time.monotonic() - self._fetched_at > self.min_refetch
            if not self._keys or stale or unknown:
                try:
                    await self._fetch()
                except (httpx.HTTPError, json.JSONDecodeError, ValueError) as exc:
                    log.error("cannot fetch JWKS from %s: %s", self.url, exc)
            return self._keys.get(kid)


class OidcVerifier:
    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self.jwks = JwksCache(settings.jwks_url, settings.jwks_cache_seconds, settings.jwks_min_refetch_seconds)

    async def verify(self, token: str) -> dict[str, Any]:
        s = self.settings
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenError("bearer token is not a well-formed JWT") from exc
        alg = header.get("alg")
        if alg not in s.algorithms:
            raise TokenError(f"token algorithm {alg!r} is not accepted; expected one of {s.algorithms}")
        key = await self.jwks.key(str(header.get("kid", "")))
        if key is None:
            raise TokenError("token is signed with a key the issuer does not publish")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=s.algorithms,
                audience=s.audience,
                issuer=s.issuer,
                leeway=s.leeway_seconds,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenError("token has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise TokenError("token audience does not match this gateway") from exc
        except jwt.InvalidIssuerError as exc:
            raise TokenError("token issuer is not trusted for this profile") from exc
        except jwt.PyJWTError as exc:
            raise TokenError(f"token rejected: {exc}") from exc
        self._check_claims(claims)
        return claims

    def _check_claims(self, claims: dict[str, Any]) -> None:
        s = self.settings
        for name, expected in s.required_claims.items():
            if claims.get(name) != expected:
                raise TokenError(f"token claim {name!r} does not have the required value", "insufficient_scope")
        scopes = set(scopes_of(claims))
        missing = [scope for scope in s.required_scopes if scope not in scopes]
        if missing:
            raise TokenError(f"token lacks required scopes {missing}", "insufficient_scope")


def scopes_of(claims: dict[str, Any]) -> list[str]:
    raw = claims.get("scope", claims.get("scp", []))
    if isinstance(raw, str):
        return raw.split()
    return [str(s) for s in raw] if isinstance(raw, list) else []
