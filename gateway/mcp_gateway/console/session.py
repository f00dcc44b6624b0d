"""Console sessions: a signed cookie, plus the ids of logged-out sessions on the server.

The cookie holds who is logged in, the CSRF token and a random session id,
signed with HMAC-SHA256. The signing keys are derived from secrets that live
only in the environment (the API-key pepper, `MCP_GATEWAY_SESSION_KEYS`), never
from the database, so a dump or read replica cannot forge a session; every
replica with the same environment accepts the same cookies. Logout revokes the
session id in the store (see `revocation`), so a copied cookie dies with it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass, field

COOKIE = "mcp_console"
LOGIN_SECONDS = 8 * 3600
ANONYMOUS_SECONDS = 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def revocation(sid: str) -> str:
    """The session's name among the store's revoked session nonces (shared with MCP sessions)."""
    return f"console:{sid}"


@dataclass
class Session:
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    sid: str = field(default_factory=lambda: secrets.token_urlsafe(16))  # what logout revokes
    role: str | None = None  # "admin" | "tenant" | None (not logged in)
    tenant: str | None = None
    key_id: str | None = None  # the tenant console token this login came from
    admin_fp: str | None = None  # fingerprint of the admin token used, so rotating it ends the session
    expires: float = field(default_factory=lambda: time.time() + ANONYMOUS_SECONDS)

    @property
    def max_age(self) -> int:
        return max(0, int(self.expires - time.time()))


class SessionCodec:
    """Signs with the first key and accepts any of them, so keys rotate without logging everyone out."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("the console needs at least one session signing key")
        self._keys = keys

    def _sign(self, payload: str, key: bytes | None = None) -> str:
        return _b64(hmac.new(key or self._keys[0], payload.encode(), hashlib.sha256).digest())

    def _signed(self, payload: str, signature: str) -> bool:
        return any(hmac.compare_digest(signature, self._sign(payload, key)) for key in self._keys)

    def encode(self, session: Session) -> str:
        payload = _b64(json.dumps(asdict(session), separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}"

    def decode(self, value: str | None) -> Session | None:
        """The session in a cookie, or None when it is missing, forged or expired."""
        if not value or "." not in value:
            return None
        payload, signature = value.rsplit(".", 1)
        if not self._signed(payload, signature):
            return None
        try:
            session = Session(**json.loads(_unb64(payload)))
        except (ValueError, TypeError):
            return None
        return session if session.expires > time.time() else None

    def fingerprint(self, secret: str) -> str:
        """A non-reversible tag of a secret, to notice when it changes."""
        return self._sign("fp:" + secret)[:22]

    def fingerprint_matches(self, secret: str, tag: str) -> bool:
        """`tag` is the fingerprint of `secret` under any of the keys."""
        return any(hmac.compare_digest(tag, self._sign("fp:" + secret, key)[:22]) for key in self._keys)
