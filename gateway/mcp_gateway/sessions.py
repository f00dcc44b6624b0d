"""Stateless, signed `Mcp-Session-Id` tokens for handshake-era clients.

A token carries what a replica needs to serve the session without shared
memory: profile, caller, negotiated protocol version, issue time. It is signed
with HMAC-SHA256; the first key signs, every listed key verifies, so keys can
be rotated by prepending a new one and dropping the old one later.
Format: `v1.<base64url payload>.<base64url mac>` (visible
ASCII, as the spec requires for session ids).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mcp_gateway.store.base import Store

MAX_CAPABILITIES_CHARS = 2048
PRUNE_MIN = 1024  # keeps the header small; larger declarations are dropped


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class SessionInfo:
    profile: str
    caller: str
    protocol_version: str
    issued_at: int
    nonce: str
    # The capabilities the client declared in `initialize` (server-to-client requests need them).
    capabilities: dict[str, Any] | None = None


class SessionSigner:
    def __init__(self, keys: list[bytes], max_age_seconds: int = 7 * 24 * 3600) -> None:
        if not keys:
            raise ValueError("at least one session signing key is required")
        self.keys = keys
        self.max_age = max_age_seconds

    def _mac(self, key: bytes, payload: str) -> str:
        return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())

    def issue(self, profile: str, caller: str, protocol_version: str, nonce: str, capabilities: Any = None) -> str:
        body: dict[str, Any] = {"p": profile, "c": caller, "v": protocol_version, "t": int(time.time()), "n": nonce}
        if isinstance(capabilities, dict) and len(json.dumps(capabilities)) <= MAX_CAPABILITIES_CHARS:
            body["k"] = capabilities
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        return f"v1.{payload}.{self._mac(self.keys[0], payload)}"

    def verify(self, token: str) -> SessionInfo | None:
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != "v1":
            return None
        payload, mac = parts[1], parts[2]
        if not any(hmac.compare_digest(self._mac(key, payload), mac) for key in self.keys):
            return None
        try:
            body = json.loads(_unb64(payload))
            caps = body.get("k")
            info = SessionInfo(
                str(body["p"]),
                str(body["c"]),
                str(body["v"]),
                int(body["t"]),
                str(body["n"]),
                caps if isinstance(caps, dict) else None,
            )
        except (ValueError, KeyError, TypeError):
            return None
        if time.time() - info.issued_at > self.max_age:
            return None
        return info


def parse_keys(value: str) -> list[bytes]:
    """Comma-separated keys from the environment, newest first."""
    return [k.strip().encode() for k in value.split(",") if k.strip()]


class RevokedSessions:
    """Sessions ended with DELETE. Every replica keeps them in memory (a lookup per request is
    a dict membership test); the store persists them and tells the other replicas.

    Each nonce is kept until its token would have expired anyway (nonce -> expiry), and the
    expired ones are pruned as the table grows, so it never only grows.
    """

    def __init__(self, store: Store, max_age_seconds: int) -> None:
        self.store = store
        self.max_age = max_age_seconds
        self._nonces: dict[str, float] = {}  # nonce -> unix time its token expires
        self._mark = 0

    async def load(self) -> None:
        self._nonces = {nonce: at.timestamp() for nonce, at in await self.store.revoked_sessions()}
        self._mark = 2 * len(self._nonces)

    def __contains__(self, nonce: str) -> bool:
        return nonce in self._nonces

    def __len__(self) -> int:
        return len(self._nonces)

    def add(self, nonce: str, expires_at: float | None = None) -> None:
        """Remember `nonce`; without its expiry, for the longest a token lives from now."""
        self._nonces[nonce] = expires_at if expires_at is not None else time.time() + self.max_age
        if len(self._nonces) > max(self._mark, PRUNE_MIN):
            now = time.time()
            self._nonces = {n: at for n, at in self._nonces.items() if at > now}
            self._mark = 2 * len(self._nonces)

    async def revoke(self, info: SessionInfo) -> None:
        await self.revoke_nonce(info.nonce, info.issued_at + self.max_age)

    async def revoke_nonce(self, nonce: str, expires_at: float) -> None:
        """End a session by nonce: here at once, and through the store on every replica (and after restarts)."""
        self.add(nonce, expires_at)
        await self.store.revoke_session(nonce, datetime.fromtimestamp(expires_at, UTC))
