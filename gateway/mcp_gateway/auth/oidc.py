"""OIDC/JWT bearer tokens checked against an issuer's JWKS.

The JWKS is fetched lazily, cached, and refetched when a token names a key id
we don't know (the issuer rotated its keys) - at most once per
`min_refetch_seconds` so a flood of forged kids cannot hammer the issuer.
Only the profile's configured asymmetric algorithms are accepted; `none` and
HMAC algorithms never are (an HS256 token "signed" with the public key is the
classic confusion attack).

The JWKS URL comes from a tenant's Profile, so fetching it must not become a way
into the gateway's network (SSRF): it must be `https://`, and it is fetched
through the adapter's guarded egress client (`mcp_adapter.egress`: the name is
resolved once, every address checked to be public, and the connection made to the
checked address). `gateway.allowPrivateJwks: true` (routing config, off by
default) admits private and loopback addresses, and plain `http://` for a
loopback host only (a test or local issuer).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from jwt import PyJWK
from mcp_adapter.egress import AddressPolicy, BlockedAddress, guarded_client

from mcp_gateway.config import OidcSettings

log = logging.getLogger("mcp_gateway.auth.oidc")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def jwks_url_problem(url: str, allow_private: bool) -> str | None:
    """Why the gateway will not fetch `url`, or None when it will (addresses are checked on connect)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and allow_private and _loopback(parts.hostname or ""):
        return None
    return (
        f"jwksUrl {url!r} is not fetched: it must be an https:// URL (plain http is allowed only for a loopback "
        "issuer, with gateway.allowPrivateJwks: true in the routing config)"
    )


class TokenError(Exception):
    """The token is not acceptable; the message is safe to show the client.

    `error` is the RFC 6750 error code, or `unavailable` when the token could not be checked.
    """

    def __init__(self, message: str, error: str = "invalid_token") -> None:
        super().__init__(message)
        self.error = error


def _fetch_failure(exc: Exception) -> str:
    """One line for the operator's log: httpx's timeouts carry an empty message, a status error spans lines."""
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return str(exc) or type(exc).__name__


class JwksCache:
    # No defaults: every cache is built from a profile's settings, and whether private addresses
    # may be fetched is a decision each caller states.
    def __init__(self, url: str, ttl_seconds: float, min_refetch_seconds: float, allow_private: bool) -> None:
        self.url = url
        self.ttl = ttl_seconds
        self.min_refetch = min_refetch_seconds
        self.allow_private = allow_private
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()
        # The last fetch failed (network, HTTP error, or a document that is not a JWKS): the issuer is
        # down, so an unknown key id says nothing about the token (503, not 401).
        self.unreachable = False

    async def _fetch(self) -> None:
        self._fetched_at = time.monotonic()
        problem = jwks_url_problem(self.url, self.allow_private)
        if problem:
            raise BlockedAddress(problem)
        async with guarded_client(AddressPolicy.of(self.allow_private), timeout=5.0) as client:
            response = await client.get(self.url)
            response.raise_for_status()
            document = response.json()
        entries = document.get("keys", []) if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise ValueError('the document is not a JWKS (a JSON object with a "keys" list)')
        keys: dict[str, PyJWK] = {}
        for entry in entries:
            if not isinstance(entry, dict):
                log.warning("skipping a JWKS entry that is not a JSON object from %s", self.url)
                continue
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
                    self.unreachable = False
                except BlockedAddress as exc:
                    # The egress guard's own hint names adapter settings; this one is the gateway's.
                    reason = str(exc).split("; set allowPrivateNetwork", 1)[0]
                    log.error(
                        "cannot fetch JWKS from %s: %s (a private or loopback issuer needs gateway.allowPrivateJwks: "
                        "true in the routing config)",
                        self.url,
                        reason,
                        extra={"event": "jwks_blocked"},
                    )
                except (httpx.HTTPError, json.JSONDecodeError, ValueError) as exc:
                    self.unreachable = True
                    log.error("cannot fetch JWKS from %s: %s", self.url, _fetch_failure(exc))
            key = self._keys.get(kid)
            if key is None and self.unreachable:
                raise TokenError(
                    "cannot check the token now: the identity provider's signing keys could not be fetched; "
                    "try again later",
                    "unavailable",
                )
            return key


class OidcVerifier:
    def __init__(self, settings: OidcSettings, allow_private_jwks: bool) -> None:
        self.settings = settings
        self.allow_private_jwks = allow_private_jwks
        self.jwks = JwksCache(
            settings.jwks_url, settings.jwks_cache_seconds, settings.jwks_min_refetch_seconds, allow_private_jwks
        )

    def serves(self, settings: OidcSettings, allow_private_jwks: bool) -> bool:
        """Built for exactly these settings? (Identity first: the config is frozen, so usually it is.)"""
        same = self.settings is settings or self.settings == settings
        return same and self.allow_private_jwks == allow_private_jwks

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
    raw = claims.get("scope", claims.get("scp"))
    if isinstance(raw, str):
        return raw.split()
    return [str(s) for s in raw] if isinstance(raw, list) else []
