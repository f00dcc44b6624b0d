"""Quota exactness across two replicas, with the race forced rather than hoped for.

Two `PostgresStore`s (two gateway replicas) admit hundreds of quota-only calls against one
counter, round after round. A batch (`mcp_admit_batch`, migrations/0007_admit_batch.sql)
reads the counter, decides its admissions in memory and writes the new count back, so
exactness rests on its `FOR UPDATE OF q`: a second replica's batch must not read the count
until the first has committed.

A read-then-write race is narrow, so the test widens it on purpose: triggers it installs in
its own database make every batch wait, between reading the counter and writing it (at its
rate-bucket UPDATE; each replica has its own, never-limiting bucket), on an advisory lock the test holds,
and the test releases it only once both replicas' batches are waiting inside PostgreSQL (each
replica's batcher is first kept busy by a parked "holder" call, so the round's calls leave as
batches rather than as lone calls). With
the row lock, the second batch waits before reading and the count stays exact; without it,
both read the same count and the second write is lost.

Proven both ways: with `FOR UPDATE OF q` deleted from 0007_admit_batch.sql,
`test_two_replicas_never_admit_past_a_quota` fails (checked: a round admitted 240 calls against a limit of 150).
`test_the_race_is_real_without_the_row_lock` keeps that proof in the suite: it installs the
function without the lock and asserts the overcount, so the forcing cannot silently stop working.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from mcp_gateway.store.base import Bucket, Counter, Refusal
from mcp_gateway.store.migrate import migration_files
from mcp_gateway.store.postgres import PostgresStore

HOLD_GATE = 716_015  # parks each replica's lone "holder" call, so the real calls queue up as batches
GATE = 716_016  # parks the batches inside PostgreSQL until both replicas' batches are there
ROUNDS = 6
PER_REPLICA = 120  # calls per replica per round, all sent as one batch (MAX_BATCH is 128)
LIMIT = 150  # below the 240 calls of a round, above what one replica's batch offers

GATE_TRIGGER = f"""
CREATE FUNCTION test_gate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'quota_counters' THEN
        IF NEW.scope LIKE 'hold:%' THEN
            PERFORM pg_advisory_xact_lock_shared({HOLD_GATE});
        END IF;
    ELSIF current_query() LIKE '%mcp_admit_batch%' THEN
        -- A batch writes its buckets after reading the counters and before writing them.
        PERFORM pg_advisory_xact_lock_shared({GATE});
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER test_gate BEFORE UPDATE ON quota_counters FOR EACH ROW EXECUTE FUNCTION test_gate();
CREATE TRIGGER test_gate BEFORE UPDATE ON rate_buckets FOR EACH ROW EXECUTE FUNCTION test_gate();
"""

WAITING = """
SELECT count(*) FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid()
   AND wait_event_type = 'Lock' AND query LIKE $1
"""


def batch_function_without_row_lock() -> str:
    (sql,) = [text for version, _, text in migration_files() if version == 7]
    assert sql.count("FOR UPDATE OF q") == 1
    return sql.replace("FOR UPDATE OF q", "")


@pytest.fixture
async def replicas(pg_dsn: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore, asyncpg.Connection]]:
    first, second = PostgresStore(pg_dsn), PostgresStore(pg_dsn)
    await first.start()  # applies the migrations
    await second.start()
    control = await asyncpg.connect(pg_dsn)
    await control.execute(GATE_TRIGGER)
    try:
        yield first, second, control
    finally:
        await control.close()
        await first.close()
        await second.close()


async def wait_for_waiting(control: asyncpg.Connection, query: str) -> None:
    """Event-based: poll PostgreSQL until both replicas have a `query` call blocked inside it."""
    async with asyncio.timeout(30):
        while await control.fetchval(WAITING, f"%{query}%") < 2:
            await asyncio.sleep(0.01)


async def play_round(
    first: PostgresStore, second: PostgresStore, control: asyncpg.Connection, scope: str
) -> tuple[int, int, int]:
    """One round on a fresh counter; returns (admitted by first, admitted by second, stored count).

    Each replica sends calls one at a time while idle and batches what queues up meanwhile, so
    first each replica's batcher is kept busy by a lone "holder" call parked at HOLD_GATE; the
    round's calls then queue and leave as one batch per replica, which GATE parks in turn.
    """
    period = "d:2026-12-02"
    quota = [Counter(scope, period, LIMIT)]
    holds = [f"hold:{scope}:{n}" for n in (1, 2)]
    # Rows exist up front: two batches inserting the same new row would queue on each other's insert.
    for row in [*holds, scope]:
        await control.execute("INSERT INTO quota_counters (scope, period, used) VALUES ($1, $2, 0)", row, period)
    await control.execute("SELECT pg_advisory_lock($1), pg_advisory_lock($2)", HOLD_GATE, GATE)
    try:
        holders = [
            asyncio.ensure_future(store.admit([], [Counter(hold, period, 10)], sync_commit=False))
            for store, hold in zip((first, second), holds, strict=True)
        ]
        await wait_for_waiting(control, "mcp_admit(")
        # Each replica's own, never-limiting bucket: the quota is the only shared limit.
        calls = [
            asyncio.ensure_future(store.admit([Bucket(f"replica:{n}", 1e9, 1e9)], quota, sync_commit=False))
            for _ in range(PER_REPLICA)
            for n, store in enumerate((first, second))
        ]
        await control.execute("SELECT pg_advisory_unlock($1)", HOLD_GATE)
        assert await asyncio.wait_for(asyncio.gather(*holders), timeout=30) == [None, None]
        await wait_for_waiting(control, "mcp_admit_batch")
    finally:
        await control.execute("SELECT pg_advisory_unlock_all()")
    outcomes: list[Refusal | None] = await asyncio.wait_for(asyncio.gather(*calls), timeout=60)
    assert all(r is None or r.counter == quota[0] for r in outcomes)
    stored = await control.fetchval("SELECT used FROM quota_counters WHERE scope = $1", scope)
    return outcomes[0::2].count(None), outcomes[1::2].count(None), int(stored)


async def test_two_replicas_never_admit_past_a_quota(
    replicas: tuple[PostgresStore, PostgresStore, asyncpg.Connection],
) -> None:
    first, second, control = replicas
    for round_no in range(ROUNDS):
        by_first, by_second, stored = await play_round(first, second, control, f"tenant:round{round_no}")
        assert by_first + by_second == LIMIT == stored, (round_no, by_first, by_second, stored)
        # Both replicas really took part in the round: their batches overlapped and both admitted.
        assert by_first > 0 and by_second > 0
    assert first.admissions.deadlocks == second.admissions.deadlocks == 0


async def test_the_race_is_real_without_the_row_lock(
    replicas: tuple[PostgresStore, PostgresStore, asyncpg.Connection],
) -> None:
    """The control: the same rounds against `mcp_admit_batch` minus its row lock overcount."""
    first, second, control = replicas
    await control.execute(batch_function_without_row_lock())
    by_first, by_second, stored = await play_round(first, second, control, "tenant:unlocked")
    assert by_first + by_second > LIMIT, (by_first, by_second, stored)
    assert stored <= LIMIT  # the counter itself looks fine: the second write was lost
