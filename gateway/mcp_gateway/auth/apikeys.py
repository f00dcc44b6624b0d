"""API keys: `mcpk_<prefix>_<secret>`.

Only a keyed hash (HMAC-SHA256 with a server-side pepper) of the whole key is
stored. The prefix is random, non-secret and unique: it finds the record, and
the hash is compared in constant time. A leaked database therefore yields no
usable key without the pepper, which lives only in the environment.
"""

from __future__ import annotations

import hmac
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

KEY_SCHEME = "mcpk"
PREFIX_LEN = 12

# Labels are read by policy rules (`key.labels.team`) and copied into every audit record of the
# key, so they are small: a few short names (Kubernetes label-name syntax) and short values.
MAX_LABELS = 16
MAX_LABEL_VALUE = 128
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")


def check_labels(labels: Mapping[str, object]) -> dict[str, str]:
    """The labels as stored, or ValueError saying which label is bad and why."""
    if len(labels) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels per key ({len(labels)} given)")
    checked: dict[str, str] = {}
    for name, value in labels.items():
        if not isinstance(name, str) or not _LABEL_NAME.match(name):
            raise ValueError(
                f"label name {str(name)[:80]!r}: use 1-63 letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit"
            )
        if not isinstance(value, str):
            raise ValueError(f"label {name!r}: the value must be a string")
        if len(value) > MAX_LABEL_VALUE or not value.isprintable():
            raise ValueError(f"label {name!r}: the value must be printable and at most {MAX_LABEL_VALUE} characters")
        checked[name] = value
    return dict(sorted(checked.items()))


@dataclass
class ApiKeyRecord:
    id: str
    prefix: str
    key_hash: str
    tenant: str
    profiles: list[str]
    name: str = ""
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    labels: dict[str, str] = field(default_factory=dict)  # read by policy rules as `key.labels`

    def public(self) -> dict[str, object]:
        """Everything but the hash: what the admin API lists."""
        return {
            "id": self.id,
            "prefix": self.prefix,
            "tenant": self.tenant,
            "profiles": self.profiles,
            "name": self.name,
            "labels": self.labels,
            "expiresAt": self.expires_at.isoformat() if self.expires_at else None,
            "revokedAt": self.revoked_at.isoformat() if self.revoked_at else None,
            "createdAt": self.created_at.isoformat(),
        }

    def usable_at(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


class KeyHasher:
    def __init__(self, pepper: bytes) -> None:
        if len(pepper) < 16:
            raise ValueError("the API key pepper must be at least 16 bytes")
        self._pepper = pepper

    def hash(self, key: str) -> str:
        return hmac.digest(self._pepper, key.encode(), "sha256").hex()  # one-shot: the C fast path

    def matches(self, key: str, stored_hash: str) -> bool:
        return hmac.compare_digest(self.hash(key), stored_hash)


def new_key(
    hasher: KeyHasher,
    tenant: str,
    profiles: list[str],
    name: str = "",
    expires_at: datetime | None = None,
    labels: Mapping[str, str] | None = None,
) -> tuple[str, ApiKeyRecord]:
    """A fresh key (returned once, never stored) and the record to store (labels: `check_labels` first)."""
    prefix = secrets.token_hex(PREFIX_LEN // 2)
    key = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    record = ApiKeyRecord(
        id=str(uuid.uuid4()),
        prefix=prefix,
        key_hash=hasher.hash(key),
        tenant=tenant,
        profiles=profiles,
        name=name,
        expires_at=expires_at,
        labels=dict(labels or {}),
    )
    return key, record


def key_prefix(key: str) -> str | None:
    """The lookup prefix of a well-formed key, else None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME or len(parts[1]) != PREFIX_LEN or not parts[2]:
        return None
    return parts[1]
