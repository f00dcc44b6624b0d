"""Connections at run time: the access token for a caller's upstream call, links, sealed states.

Access tokens are cached per connection (tenant, caller, profile, upstream) in process memory
until shortly before they expire; one refresh at a time per connection, since a provider that
rotates refresh tokens would otherwise see the old one twice. A refresh the provider refuses
(revoked or expired) deletes the row: the caller is asked to connect again. A provider that is
down leaves the row as it is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import httpx
from mcp_common.jsonlog import register_secret

from mcp_gateway.connections import oauth
from mcp_gateway.connections.crypto import KEYS_ENV, KeyRing, Unreadable
from mcp_gateway.connections.settings import ClientCredentials, OAuthConnection
from mcp_gateway.connections.store import ConnectionKey, ConnectionStore, StoredConnection, now
from mcp_gateway.token_exchange import ExchangeRefused, ExchangeUnavailable, SecretReader

log = logging.getLogger("mcp_gateway.connections")

# Refresh this long before the provider's expiry, so a token never expires in flight.
EARLY_SECONDS = 30.0
LINK_AAD = b"connect-link"
STATE_AAD = b"connect-state"
USER_AAD = b"connect-user"
KIND = "connection-deleted"  # replica message


class NotConnected(Exception):
    """The caller has no usable connection; the message says why (shown to them with the link)."""


class ConnectionsDisabled(Exception):
    pass


class _Refused(Exception):
    """A stored connection that cannot give a token (becomes NotConnected); `outcome` for the metrics."""

    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass(frozen=True)
class _Cached:
    token: str
    expires_at: float


class Connections:
    def __init__(self, env: Mapping[str, str], store: ConnectionStore, secrets: SecretReader | None = None) -> None:
        value = env.get(KEYS_ENV, "")
        for item in value.split(","):
            register_secret(item.partition(":")[2].strip() or None)
        self.ring = KeyRing.parse(value) if value.strip() else None
        self.store = store
        self.secrets = secrets or SecretReader()
        self.http = httpx.AsyncClient(follow_redirects=False)
        self._endpoints: dict[str, oauth.Endpoints] = {}
        self._tokens: dict[ConnectionKey, _Cached] = {}
        self._locks: dict[ConnectionKey, asyncio.Lock] = {}
        # Metrics (runtime.py: Metrics.connection_event): (event, tenant, profile, upstream, outcome).
        self.count: Callable[[str, str, str, str, str], None] = lambda *event: None
        # Other replicas drop their cached access token of a deleted connection (runtime.py relays it).
        self.publish: Callable[[dict[str, Any]], Awaitable[None]] | None = None

    def keys(self) -> KeyRing:
        if self.ring is None:
            raise ConnectionsDisabled(f"connections need an encryption key ring: set {KEYS_ENV} (or {KEYS_ENV}_FILE)")
        return self.ring

    async def close(self) -> None:
        await self.http.aclose()

    async def client(self, creds: ClientCredentials) -> oauth.Client:
        """The client id and its secret, read now (a rotated Secret applies at once).

        Raises oauth.ClientSecretMissing (the operator must fix it), oauth.ProviderUnavailable (the
        Kubernetes API could not be asked: try again later).
        """
        if not creds.secret_sources():
            return oauth.Client(creds.client_id)
        try:
            return oauth.Client(creds.client_id, await self.secrets.read(creds, "connection"))
        except ExchangeRefused as exc:
            raise oauth.ClientSecretMissing(f"client {creds.client_id!r}: {exc}") from None
        except ExchangeUnavailable as exc:
            raise oauth.ProviderUnavailable(str(exc)) from None

    async def endpoints(self, settings: OAuthConnection | None, issuer: str | None = None) -> oauth.Endpoints:
        """The upstream's endpoints (configured, or discovered once from its issuer)."""
        if settings is not None and settings.authorization_endpoint and settings.token_endpoint:
            return oauth.Endpoints(
                settings.authorization_endpoint, settings.token_endpoint, settings.revocation_endpoint
            )
        issuer = issuer or (settings.issuer if settings else None)
        assert issuer is not None  # settings validation: issuer or both endpoints
        found = self._endpoints.get(issuer)
        if found is None:
            found = self._endpoints[issuer] = await oauth.discover(self.http, issuer)
        if settings is not None and settings.revocation_endpoint:
            found = replace(found, revocation=settings.revocation_endpoint)
        return found

    # -- the data path -----------------------------------------------------------------

    async def access_token(self, key: ConnectionKey, settings: OAuthConnection) -> str:
        """A live access token for this caller's connection.

        Raises NotConnected (connect first / again), oauth.ProviderUnavailable, ConnectionsDisabled.
        """
        cached = self._tokens.get(key)
        if cached is not None and cached.expires_at > time.monotonic():
            return cached.token
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(key)
            if cached is not None and cached.expires_at > time.monotonic():
                return cached.token
            return await self._counted_refresh(key, settings)

    def counted(self, event: str, key: ConnectionKey, outcome: str = "") -> None:
        self.count(event, key.tenant, key.profile, key.upstream, outcome)

    async def _counted_refresh(self, key: ConnectionKey, settings: OAuthConnection) -> str:
        try:
            token = await self._refresh(key, settings)
        except _Refused as refused:
            self.counted("refresh", key, refused.outcome)
            raise NotConnected(str(refused)) from None
        except oauth.ProviderUnavailable:
            self.counted("refresh", key, "unavailable")
            raise
        except ConnectionsDisabled:
            self.counted("refresh", key, "misconfigured")
            raise
        self.counted("refresh", key, "ok")
        return token

    async def _refresh(self, key: ConnectionKey, settings: OAuthConnection) -> str:
        ring = self.keys()
        row = await self.store.get(key)
        if row is None:
            raise NotConnected(f"you have not connected your account for {label(settings, key.upstream)} yet")
        try:
            refresh_token = ring.open(row.key_id, row.sealed_refresh, key.aad()).decode()
        except Unreadable as exc:
            log.warning("connection of %s to %s/%s is unreadable: %s", key.caller, key.profile, key.upstream, exc)
            raise _Refused(
                "unreadable", f"your connection to {label(settings, key.upstream)} can no longer be read; connect again"
            ) from None
        endpoints = await self.endpoints(settings)
        try:
            client = await self.client(settings)
            tokens = await oauth.refresh(self.http, endpoints.token, client, refresh_token)
        except oauth.GrantRefused as refused:
            await self._deleted(key)
            log.info(
                "connection of %s to %s/%s refused at refresh (%s): deleted",
                key.caller,
                key.profile,
                key.upstream,
                refused.error,
            )
            raise _Refused(
                "refused",
                f"your connection to {label(settings, key.upstream)} expired or was revoked at the provider "
                f"({refused.error}); connect again",
            ) from None
        except oauth.ClientSecretMissing as exc:
            raise ConnectionsDisabled(str(exc)) from None
        rotated = tokens.refresh_token and tokens.refresh_token != refresh_token
        if rotated or row.key_id != ring.current:  # a rotated token, or a row still under an old key
            await self._write(key, tokens.refresh_token or refresh_token, tokens.scope or row.scopes)
        self._tokens[key] = _Cached(tokens.access_token, tokens.expires_at - EARLY_SECONDS)
        return tokens.access_token

    # -- connect, list, revoke ---------------------------------------------------------

    async def save(self, key: ConnectionKey, tokens: oauth.TokenSet) -> None:
        if not tokens.refresh_token:
            raise NotConnected("the provider issued no refresh token; the connection's scopes may need offline_access")
        await self._write(key, tokens.refresh_token, tokens.scope)
        self._tokens[key] = _Cached(tokens.access_token, tokens.expires_at - EARLY_SECONDS)

    async def _write(self, key: ConnectionKey, refresh_token: str, scopes: str) -> None:
        kid, sealed = self.keys().seal(refresh_token.encode(), key.aad())
        stamp = now()
        await self.store.put(StoredConnection(key, kid, sealed, scopes, stamp, stamp))

    async def of_caller(self, tenant: str, caller: str) -> list[StoredConnection]:
        return await self.store.of_caller(tenant, caller)

    async def revoke(self, key: ConnectionKey, settings: OAuthConnection | None) -> bool:
        """Delete the row (and the cached token); tell the provider too when it has a revocation endpoint."""
        row = await self.store.get(key)
        self._tokens.pop(key, None)
        if row is None:
            return False
        await self._deleted(key)
        if settings is not None and self.ring is not None:
            try:
                endpoints = await self.endpoints(settings)
                if endpoints.revocation:
                    token = self.ring.open(row.key_id, row.sealed_refresh, key.aad()).decode()
                    await oauth.revoke(self.http, endpoints.revocation, await self.client(settings), token)
            except (Unreadable, oauth.ProviderUnavailable, oauth.ClientSecretMissing, httpx.HTTPError) as exc:
                log.info("provider-side revocation skipped: %s", type(exc).__name__)
        return True

    async def _deleted(self, key: ConnectionKey) -> None:
        await self.store.delete(key)
        self._tokens.pop(key, None)
        if self.publish is not None:
            try:
                await self.publish({"kind": KIND, "key": [key.tenant, key.caller, key.profile, key.upstream]})
            except Exception as exc:  # the row is gone; other replicas' tokens expire on their own
                log.warning("cannot tell other replicas about a deleted connection: %s", type(exc).__name__)

    def forget(self, payload: Mapping[str, Any]) -> None:
        """Another replica deleted a connection: drop its cached access token here too."""
        parts = payload.get("key")
        if isinstance(parts, list) and len(parts) == 4:
            self._tokens.pop(ConnectionKey(*(str(p) for p in parts)), None)

    # -- sealed links and states -------------------------------------------------------

    def link(self, key: ConnectionKey, seconds: int) -> str:
        body = {"t": key.tenant, "c": key.caller, "p": key.profile, "u": key.upstream, "e": time.time() + seconds}
        return self.keys().seal_text(json.dumps(body).encode(), LINK_AAD)

    def open_link(self, token: str) -> ConnectionKey:
        body = self._open(token, LINK_AAD)
        return ConnectionKey(str(body["t"]), str(body["c"]), str(body["p"]), str(body["u"]))

    def seal(self, body: dict[str, object], aad: bytes) -> str:
        return self.keys().seal_text(json.dumps(body).encode(), aad)

    def _open(self, token: str, aad: bytes) -> dict[str, object]:
        """A sealed body that authenticates and has not expired; Unreadable otherwise."""
        body = json.loads(self.keys().open_text(token, aad))
        if not isinstance(body, dict):
            raise Unreadable("not a sealed object")
        expires = body.get("e")
        if not isinstance(expires, int | float) or expires < time.time():
            raise Unreadable("expired")
        return body

    def open(self, token: str, aad: bytes) -> dict[str, object]:
        return self._open(token, aad)


def label(settings: OAuthConnection, upstream: str) -> str:
    return settings.display_name or upstream
