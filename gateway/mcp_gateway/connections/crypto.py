"""AES-GCM under a key ring with key ids: the newest key seals, every listed key opens.

`MCP_GATEWAY_CONNECTION_KEYS` (or `_FILE`) is `kid:base64key[,kid:base64key...]`, each key 32
random bytes (e.g. `echo "k2:$(openssl rand -base64 32)"`). Rotation: put the new key first and
keep the old ones listed; rows sealed under an old key stay readable and are re-sealed under the
new key when their refresh token next changes. A row whose key was removed cannot be opened: its
user is asked to connect again.
"""

from __future__ import annotations

import base64
import binascii
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEYS_ENV = "MCP_GATEWAY_CONNECTION_KEYS"
_KID = re.compile(r"^[A-Za-z0-9._-]{1,32}$")
NONCE_BYTES = 12


class KeyRingError(ValueError):
    """The key ring setting is malformed (the message says how)."""


class Unreadable(Exception):
    """A sealed value whose key is not in the ring, or that does not authenticate."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class KeyRing:
    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise KeyRingError("the connection key ring is empty")
        self.current = keys[0][0]
        self._aead = {kid: AESGCM(key) for kid, key in keys}

    @classmethod
    def parse(cls, value: str) -> KeyRing:
        keys: list[tuple[str, bytes]] = []
        for item in (part.strip() for part in value.split(",")):
            kid, sep, encoded = item.partition(":")
            if not sep or not _KID.match(kid):
                raise KeyRingError(f"{KEYS_ENV}: each entry is kid:base64key with a kid of 1-32 of [A-Za-z0-9._-]")
            try:
                key = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise KeyRingError(f"{KEYS_ENV}: key {kid!r} is not base64") from None
            if len(key) != 32:
                raise KeyRingError(f"{KEYS_ENV}: key {kid!r} must be 32 bytes (openssl rand -base64 32)")
            if any(k == kid for k, _ in keys):
                raise KeyRingError(f"{KEYS_ENV}: key id {kid!r} is listed twice")
            keys.append((kid, key))
        return cls(keys)

    def seal(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]:
        """(key id, nonce + ciphertext) under the current key; `aad` binds it to its owner."""
        nonce = os.urandom(NONCE_BYTES)
        return self.current, nonce + self._aead[self.current].encrypt(nonce, plaintext, aad)

    def open(self, kid: str, sealed: bytes, aad: bytes) -> bytes:
        aead = self._aead.get(kid)
        if aead is None:
            raise Unreadable(f"sealed under key {kid!r}, which is no longer in {KEYS_ENV}")
        try:
            return aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
        except (InvalidTag, ValueError):
            raise Unreadable("does not authenticate (tampered, or sealed for something else)") from None

    def seal_text(self, plaintext: bytes, aad: bytes) -> str:
        """A URL-safe token: `kid.base64(nonce + ciphertext)`."""
        kid, sealed = self.seal(plaintext, aad)
        return f"{kid}.{_b64(sealed)}"

    def open_text(self, token: str, aad: bytes) -> bytes:
        kid, sep, body = token.partition(".")
        if not sep:
            raise Unreadable("not a sealed token")
        try:
            sealed = _unb64(body)
        except (binascii.Error, ValueError):
            raise Unreadable("not a sealed token") from None
        return self.open(kid, sealed, aad)
