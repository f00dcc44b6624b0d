"""`Store.admit`, a request's whole admission in one step, on both stores: rate buckets first,
quota counters only if every bucket had a token, each step all or nothing; and with PostgreSQL,
`gateway.limitsCommit` reaching the transaction's commit mode."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from mcp_gateway.store.base import Bucket, Counter, Refusal, Store
from mcp_gateway.store.memory import MemoryStore
from mcp_gateway.store.postgres import PostgresStore

DAY = "d:2026-11-25"


@pytest.fixture(params=["memory", "postgres"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    chosen: Store = MemoryStore() if request.param == "memory" else PostgresStore(request.getfixturevalue("pg_dsn"))
    await chosen.start()
    yield chosen
    await chosen.close()


async def test_admits_until_a_counter_is_exhausted(store: Store) -> None:
    buckets = [Bucket("profile:p", 1000, 100), Bucket("caller:p:k", 1000, 100)]
    counters = [Counter("tenant:acme", DAY, 3), Counter("caller:acme:p:k", DAY, 2)]
    assert await store.admit(buckets, counters, sync_commit=False) is None
    assert await store.admit(buckets, counters, sync_commit=True) is None
    refusal = await store.admit(buckets, counters, sync_commit=False)
    assert refusal is not None and refusal.bucket is None
    assert refusal.counter == Counter("caller:acme:p:k", DAY, 2)
    # All or nothing: the tenant's counter did not move for the refused call.
    assert await store.usage("caller:acme:p:k") + await store.usage("tenant:acme") == [
        ("caller:acme:p:k", DAY, 2),
        ("tenant:acme", DAY, 2),
    ]


async def test_an_empty_bucket_refuses_before_any_counter_moves(store: Store) -> None:
    slow = Bucket("caller:p:k", 0.01, 1)
    counters = [Counter("tenant:acme", DAY, 100)]
    assert await store.admit([slow], counters, sync_commit=False) is None
    refusal = await store.admit([Bucket("profile:p", 1000, 100), slow], counters, sync_commit=False)
    assert refusal is not None and refusal.bucket == slow and refusal.counter is None
    assert 90 < refusal.wait_seconds <= 100  # one token at 0.01/s
    assert await store.usage("tenant:acme") == [("tenant:acme", DAY, 1)]
    # The profile's token was not taken either: its bucket still admits its full burst.
    burst = [Bucket("profile:p", 0.001, 1)]
    assert await store.admit(burst, [], sync_commit=False) is None
    assert await store.admit(burst, [], sync_commit=False) is not None


async def test_a_quota_refusal_still_spends_the_rate_token(store: Store) -> None:
    once = Bucket("caller:p:k", 0.001, 2)
    full = [Counter("tenant:acme", DAY, 0)]
    refusal = await store.admit([once], full, sync_commit=False)
    assert refusal is not None and refusal.counter is not None
    assert await store.admit([once], [], sync_commit=False) is None
    assert await store.admit([once], [], sync_commit=False) is not None


@pytest.mark.parametrize(("sync_commit", "mode"), [(False, "off"), (True, "on")])
async def test_postgres_commit_mode_follows_limits_commit(pg_dsn: str, sync_commit: bool, mode: str) -> None:
    store = PostgresStore(pg_dsn)
    await store.start()  # applies the migrations
    await store.close()
    conn = await asyncpg.connect(pg_dsn)
    try:
        async with conn.transaction():
            await conn.fetchrow(
                "SELECT * FROM mcp_admit($1, $2, $3, $4, $5, $6, $7)",
                ["k"],
                [1.0],
                [5.0],
                ["tenant:acme"],
                [DAY],
                [10],
                sync_commit,
            )
            assert await conn.fetchval("SHOW synchronous_commit") == mode
        assert await conn.fetchval("SHOW synchronous_commit") == "on"  # only that transaction
    finally:
        await conn.close()


async def test_concurrent_admissions_share_round_trips_and_stay_exact(pg_dsn: str) -> None:
    store = PostgresStore(pg_dsn)
    await store.start()
    try:
        quota = Counter("tenant:acme", DAY, 150)

        async def one(i: int) -> Refusal | None:
            buckets = [Bucket("tenant:acme", 1e6, 1e6), Bucket(f"caller:p:k{i % 7}", 1e6, 1e6)]
            return await store.admit(buckets, [quota, Counter(f"caller:acme:p:k{i % 7}", DAY, 1000)], sync_commit=False)

        outcomes = await asyncio.gather(*(one(i) for i in range(200)))
        assert outcomes.count(None) == 150
        assert all(r is not None and r.counter == quota for r in outcomes if r is not None)
        assert (await store.usage("tenant:acme"))[0][2] == 150
        assert store.admissions.round_trips < 100  # requests that arrived together went together
    finally:
        await store.close()


async def test_batched_admissions_drain_a_bucket_exactly(pg_dsn: str) -> None:
    store = PostgresStore(pg_dsn)
    await store.start()
    try:
        burst = Bucket("profile:p", 0.001, 20)
        counters = [Counter("tenant:acme", DAY, 1000)]
        outcomes = await asyncio.gather(*(store.admit([burst], counters, sync_commit=False) for _ in range(50)))
        assert outcomes.count(None) == 20
        assert {r.bucket for r in outcomes if r is not None} == {burst}
        assert all(r.wait_seconds > 100 for r in outcomes if r is not None)
        assert store.admissions.round_trips < 50
        # The batches left the bucket empty and counted only the admitted calls.
        assert await store.admit([burst], [], sync_commit=False) is not None
        assert await store.usage("tenant:acme") == [("tenant:acme", DAY, 20)]
    finally:
        await store.close()


async def test_two_replicas_batching_overlapping_keys_neither_deadlock_nor_overcount(pg_dsn: str) -> None:
    first, second = PostgresStore(pg_dsn), PostgresStore(pg_dsn)
    await first.start()
    await second.start()
    try:
        quota = Counter("tenant:acme", DAY, 300)

        async def one(store: PostgresStore, i: int) -> Refusal | None:
            # Per-caller keys sort before the shared ones, and each replica meets the callers in
            # another order: taken admission by admission, the locks would cross.
            caller = i % 11 if store is first else 10 - i % 11
            buckets = [Bucket(f"caller:p:k{caller}", 1e6, 1e6), Bucket("profile:p", 1e6, 1e6)]
            return await store.admit(buckets, [quota], sync_commit=False)

        for i in range(11):  # every row exists (a key's first use may still deadlock, and is retried)
            assert await one(first, i) is None
        jobs = [one(store, i) for i in range(250) for store in (first, second)]
        outcomes = await asyncio.wait_for(asyncio.gather(*jobs), timeout=60)
        assert outcomes.count(None) == 300 - 11
        assert (await first.usage("tenant:acme"))[0][2] == 300
        # Without the batch's up-front locks in one order, this load deadlocks several times per run.
        assert first.admissions.deadlocks == second.admissions.deadlocks == 0
    finally:
        await first.close()
        await second.close()
