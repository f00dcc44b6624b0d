"""State that must not grow without bound: in-process store tables, revoked-session nonces, and
the PostgreSQL tables of past quota periods, idle rate buckets and used requestState digests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
from mcp_gateway.sessions import RevokedSessions
from mcp_gateway.store import memory
from mcp_gateway.store.base import AuditQuery, AuditRecord, Bucket, Counter
from mcp_gateway.store.memory import MemoryStore
from mcp_gateway.store.postgres import PostgresStore


async def test_memory_audit_log_keeps_the_newest_records() -> None:
    store = MemoryStore()
    total = memory.AUDIT_KEPT + 500
    await store.write_audit([AuditRecord("acme", "p", "c", f"t{i}", "ok", 1.0) for i in range(total)])
    assert len(store._audit) == memory.AUDIT_KEPT and len(store._audit_uids) <= 2 * memory.AUDIT_KEPT
    newest = await store.query_audit(AuditQuery(limit=2))
    assert [r.tool for r in newest] == [f"t{total - 1}", f"t{total - 2}"]
    assert newest[0].id == total  # ids keep counting: paging with `before` still works


async def test_memory_counters_forget_past_periods() -> None:
    store = MemoryStore()
    assert await store.consume([Counter("tenant:a", "d:2026-01-01", 5), Counter("tenant:a", "m:2026-01", 50)]) is None
    assert await store.consume([Counter("tenant:a", "d:2026-01-02", 5), Counter("tenant:a", "m:2026-01", 50)]) is None
    assert sorted(store._counters) == [("tenant:a", "d:2026-01-02"), ("tenant:a", "m:2026-01")]
    assert store._counters[("tenant:a", "m:2026-01")] == 2


async def test_memory_full_buckets_are_dropped() -> None:
    store = MemoryStore()
    for i in range(3 * memory.PRUNE_MIN):  # many one-off callers, each bucket refilling at once
        assert await store.take([Bucket(f"caller:p:{i}", 1e9, 10)]) is None
    assert len(store._buckets) <= memory.PRUNE_MIN + 1
    # A bucket that is still draining is kept (and still limits).
    store2 = MemoryStore()
    assert await store2.take([Bucket("k", 0.001, 1)]) is None
    assert await store2.take([Bucket("k", 0.001, 1)]) is not None


async def test_memory_continuations_are_single_use_and_expire() -> None:
    store = MemoryStore()
    later = datetime.now(UTC) + timedelta(hours=1)
    assert await store.claim_continuation(b"d1", later)
    assert not await store.claim_continuation(b"d1", later)
    past = datetime.now(UTC) - timedelta(seconds=1)
    for i in range(2 * memory.PRUNE_MIN):
        await store.claim_continuation(i.to_bytes(4, "big"), past)
    assert len(store._continuations) <= memory.PRUNE_MIN + 1


async def test_revoked_sessions_are_pruned_after_their_expiry() -> None:
    revoked = RevokedSessions(MemoryStore(), max_age_seconds=60)
    revoked.add("live")
    for i in range(3000):
        revoked.add(f"old-{i}", expires_at=0.0)  # tokens long expired
    assert "live" in revoked
    assert len(revoked) < 1100


async def test_postgres_housekeeping_drops_what_nothing_reads(pg_dsn: str) -> None:
    store = PostgresStore(pg_dsn)
    await store.start()
    try:
        today = datetime.now(UTC)
        old_day, old_month = f"d:{today - timedelta(days=3):%Y-%m-%d}", f"m:{today - timedelta(days=70):%Y-%m}"
        current = [Counter("tenant:a", f"d:{today:%Y-%m-%d}", 9), Counter("tenant:a", f"m:{today:%Y-%m}", 9)]
        assert await store.consume([Counter("tenant:a", old_day, 9), Counter("tenant:a", old_month, 9)]) is None
        assert await store.consume(current) is None
        assert await store.take([Bucket("idle", 1, 5)]) is None
        assert await store.take([Bucket("busy", 1, 5)]) is None
        assert await store.claim_continuation(b"old", today - timedelta(seconds=1))
        assert await store.claim_continuation(b"live", today + timedelta(hours=1))
        async with store.pool.acquire() as conn:
            await conn.execute("UPDATE rate_buckets SET updated_at = now() - interval '2 days' WHERE key = 'idle'")
        await store.housekeep()
        conn2: asyncpg.Connection = await asyncpg.connect(pg_dsn)
        try:
            periods = sorted(r["period"] for r in await conn2.fetch("SELECT period FROM quota_counters"))
            buckets = [r["key"] for r in await conn2.fetch("SELECT key FROM rate_buckets")]
            digests = [bytes(r["digest"]) for r in await conn2.fetch("SELECT digest FROM used_request_states")]
        finally:
            await conn2.close()
        assert periods == sorted(c.period for c in current)
        assert buckets == ["busy"]
        assert digests == [b"live"]
        assert not await store.claim_continuation(b"live", today + timedelta(hours=1))  # still single-use
    finally:
        await store.close()
