"""`Store.admit`, a request's whole admission in one step, on both stores: rate buckets first,
quota counters only if every bucket had a token, each step all or nothing; and with PostgreSQL,
`gateway.limitsCommit` reaching the transaction's commit mode."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from mcp_gateway.store.base import Bucket, Counter, Store
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
    assert sorted(await store.usage("")) == [("caller:acme:p:k", DAY, 2), ("tenant:acme", DAY, 2)]


async def test_an_empty_bucket_refuses_before_any_counter_moves(store: Store) -> None:
    slow = Bucket("caller:p:k", 0.01, 1)
    counters = [Counter("tenant:acme", DAY, 100)]
    assert await store.admit([slow], counters, sync_commit=False) is None
    refusal = await store.admit([Bucket("profile:p", 1000, 100), slow], counters, sync_commit=False)
    assert refusal is not None and refusal.bucket == slow and refusal.counter is None
    assert 90 < refusal.wait_seconds <= 100  # one token at 0.01/s
    assert await store.usage("tenant:") == [("tenant:acme", DAY, 1)]
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
