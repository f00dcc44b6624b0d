"""sessions.py in process: signed session ids (format, rotation, tampering, expiry, declared
capabilities) and the revoked-session table's pruning (mutation-tested)."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import pytest
from mcp_gateway import sessions
from mcp_gateway.sessions import RevokedSessions, SessionInfo, SessionSigner, parse_keys
from mcp_gateway.store.memory import MemoryStore


def payload_of(token: str) -> dict[str, object]:
    text = token.split(".")[1]
    result: dict[str, object] = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    return result


def test_a_token_round_trips_and_is_visible_ascii() -> None:
    signer = SessionSigner([b"k1" * 16])
    token = signer.issue("prof", "key:1", "2025-11-25", "n1", {"sampling": {}})
    assert token.startswith("v1.") and token.count(".") == 2
    assert all(33 <= ord(c) <= 126 for c in token) and "=" not in token
    info = signer.verify(token)
    assert info == SessionInfo("prof", "key:1", "2025-11-25", info.issued_at if info else 0, "n1", {"sampling": {}})
    assert info is not None and abs(info.issued_at - time.time()) < 60
    assert payload_of(token) == {
        "p": "prof",
        "c": "key:1",
        "v": "2025-11-25",
        "t": info.issued_at,
        "n": "n1",
        "k": {"sampling": {}},
    }


def test_capabilities_are_kept_only_when_a_small_dict() -> None:
    signer = SessionSigner([b"k" * 32])
    assert "k" not in payload_of(signer.issue("p", "c", "v", "n", ["not", "a", "dict"]))
    big = {"x": "y" * sessions.MAX_CAPABILITIES_CHARS}
    assert "k" not in payload_of(signer.issue("p", "c", "v", "n", big))
    edge = {"x": "y" * (sessions.MAX_CAPABILITIES_CHARS - len(json.dumps({"x": ""})))}
    assert len(json.dumps(edge)) == sessions.MAX_CAPABILITIES_CHARS
    info = signer.verify(signer.issue("p", "c", "v", "n", edge))
    assert info is not None and info.capabilities == edge


def test_rotation_first_key_signs_every_key_verifies() -> None:
    old, new = b"o" * 32, b"n" * 32
    before = SessionSigner([old]).issue("p", "c", "v", "n")
    rotated = SessionSigner([new, old])
    assert rotated.verify(before) is not None
    after = rotated.issue("p", "c", "v", "n")
    assert SessionSigner([new]).verify(after) is not None
    assert SessionSigner([old]).verify(after) is None


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: "v2" + t[2:],
        lambda t: t + ".x",
        lambda t: t.rsplit(".", 1)[0],
        lambda t: t[:-3] + ("AAA" if not t.endswith("AAA") else "BBB"),
        lambda t: "v1." + base64.urlsafe_b64encode(b'{"p":"other"}').decode().rstrip("=") + "." + t.split(".")[2],
    ],
    ids=["version", "four-parts", "two-parts", "mac", "payload"],
)
def test_tampered_tokens_are_refused(mangle: object) -> None:
    signer = SessionSigner([b"k" * 32])
    token = signer.issue("p", "c", "v", "n")
    assert signer.verify(mangle(token)) is None  # type: ignore[operator]


def test_a_signed_but_malformed_payload_is_refused() -> None:
    signer = SessionSigner([b"k" * 32])
    for body in (b'{"p":"x"}', b"not json", b'{"p":"a","c":"b","v":"c","t":"soon","n":"d"}'):
        payload = base64.urlsafe_b64encode(body).decode().rstrip("=")
        assert signer.verify(f"v1.{payload}.{signer._mac(signer.keys[0], payload)}") is None
    payload = base64.urlsafe_b64encode(b'{"p":1,"c":2,"v":3,"t":4.0,"n":5,"k":[1]}').decode().rstrip("=")
    signer.max_age = 10**12
    info = signer.verify(f"v1.{payload}.{signer._mac(signer.keys[0], payload)}")
    assert info == SessionInfo("1", "2", "3", 4, "5", None)


def test_tokens_expire_after_max_age(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = SessionSigner([b"k" * 32], max_age_seconds=100)
    token = signer.issue("p", "c", "v", "n")
    issued = float(payload_of(token)["t"])  # type: ignore[arg-type]
    monkeypatch.setattr(sessions.time, "time", lambda: issued + 100)
    assert signer.verify(token) is not None  # exactly max_age old: still valid
    monkeypatch.setattr(sessions.time, "time", lambda: issued + 102)
    assert signer.verify(token) is None


def test_signer_needs_a_key_and_keys_parse_newest_first() -> None:
    with pytest.raises(ValueError, match="at least one"):
        SessionSigner([])
    assert SessionSigner([b"k"]).max_age == 7 * 24 * 3600
    assert parse_keys(" new , old,, ") == [b"new", b"old"]
    assert parse_keys("") == []


class FakeStore:
    def __init__(self) -> None:
        self.revoked: list[tuple[str, datetime]] = []

    async def revoked_sessions(self) -> list[tuple[str, datetime]]:
        return list(self.revoked)

    async def revoke_session(self, nonce: str, expires_at: datetime) -> None:
        self.revoked.append((nonce, expires_at))


async def test_revocation_is_stored_and_loaded_by_another_replica() -> None:
    store = FakeStore()
    one = RevokedSessions(store, max_age_seconds=100)  # type: ignore[arg-type]
    info = SessionInfo("p", "c", "v", 1_000, "gone")
    await one.revoke(info)
    assert "gone" in one and len(one) == 1
    assert store.revoked[0][0] == "gone" and store.revoked[0][1].timestamp() == 1_100
    other = RevokedSessions(store, max_age_seconds=100)  # type: ignore[arg-type]
    assert "gone" not in other
    await other.load()
    assert "gone" in other and other._mark == 2


def test_expired_revocations_are_pruned_as_the_table_grows(monkeypatch: pytest.MonkeyPatch) -> None:
    table = RevokedSessions(FakeStore(), max_age_seconds=100)  # type: ignore[arg-type]
    now = time.time()
    for i in range(sessions.PRUNE_MIN):
        table.add(f"old{i}", now - 1)  # already expired
    assert len(table) == sessions.PRUNE_MIN  # not past the mark yet
    table.add("fresh")  # past it: the expired ones go
    assert len(table) == 1 and "fresh" in table and table._mark == 2
    assert table._nonces["fresh"] == pytest.approx(now + 100, abs=5)


async def test_a_nonce_revoked_with_its_expiry_keeps_it_here_and_in_the_store() -> None:
    """revoke_nonce records the token's own expiry (not the longest lifetime) in this replica's table,
    which prunes by it, and hands the store a UTC time (the real in-memory store compares it)."""
    store = MemoryStore()
    table = RevokedSessions(store, max_age_seconds=3600)
    now = time.time()
    await table.revoke_nonce("ended", now - 1)  # its token has expired since
    await table.revoke_nonce("live", now + 60)
    assert await store.revoked_sessions() == [("live", datetime.fromtimestamp(now + 60, UTC))]
    for i in range(sessions.PRUNE_MIN):
        table.add(f"n{i}", now + 60)
    assert "ended" not in table and "live" in table
