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


class SessionSigner:
    def __init__(self, keys: list[bytes], max_age_seconds: int = 7 * 24 * 3600) -> None:
        if not keys:
            raise ValueError("at least one session signing key is required")
        self.keys = keys
        self.max_age = max_age_seconds

    def _mac(self, key: bytes, payload: str) -> str:
        return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())

    def issue(self, profile: str, caller: str, protocol_version: str, nonce: str) -> str:
        body = {"p": profile, "c": caller, "v": protocol_version, "t": int(time.time()), "n": nonce}
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
            info = SessionInfo(str(body["p"]), str(body["c"]), str(body["v"]), int(body["t"]), str(body["n"]))
        except (ValueError, KeyError, TypeError):
            return None
        if time.time() - info.issued_at > self.max_age:
            return None
        return info


def parse_keys(value: str) -> list[bytes]:
    """Comma-separated keys from the environment, newest first."""
    return [k.strip().encode() for k in value.split(",") if k.strip()]
