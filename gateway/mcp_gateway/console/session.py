"""Console sessions: a signed cookie, no server-side state.

The cookie holds who is logged in and the CSRF token of the session, signed
with HMAC-SHA256. The signing key lives in the store (`shared_secret`), so
every replica sharing a database accepts the same cookies.
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


@dataclass
class Session:
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    role: str | None = None  # "admin" | "tenant" | None (not logged in)
    tenant: str | None = None
    key_id: str | None = None  # the tenant console token this login came from
    admin_fp: str | None = None  # fingerprint of the admin token used, so rotating it ends the session
    expires: float = field(default_factory=lambda: time.time() + ANONYMOUS_SECONDS)

    @property
    def max_age(self) -> int:
        return max(0, int(self.expires - time.time()))


class SessionCodec:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def encode(self, session: Session) -> str:
        payload = _b64(json.dumps(asdict(session), separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}"

    def decode(self, value: str | None) -> Session | None:
        """The session in a cookie, or None when it is missing, forged or expired."""
        if not value or "." not in value:
            return None
        payload, signature = value.rsplit(".", 1)
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            session = Session(**json.loads(_unb64(payload)))
        except (ValueError, TypeError):
            return None
        return session if session.expires > time.time() else None

    def fingerprint(self, secret: str) -> str:
        """A non-reversible tag of a secret, to notice when it changes."""
        return self._sign("fp:" + secret)[:22]
