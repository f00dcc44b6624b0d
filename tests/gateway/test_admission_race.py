"""Quota exactness across two replicas, with the race forced rather than hoped for.

Two `PostgresStore`s (two gateway replicas) admit hundreds of quota-only calls against one
counter, round after round. A batch (`mcp_admit_batch`, migrations/0007_admit_batch.sql)
reads the counter, decides its admissions in memory and writes the new count back, so
exactness rests on its `FOR UPDATE OF q`: a second replica's batch must not read the count
until the first has committed.

A read-then-write race is narrow, so the test widens it on purpose: a trigger it installs in
its own database makes every batch's counter UPDATE wait on an advisory lock the test holds,
and the test releases it only once both replicas' batches are waiting inside PostgreSQL. With
the row lock, the second batch waits before reading and the count stays exact; without it,
both read the same count and the second write is lost.

Proven both ways: with `FOR UPDATE OF q` deleted from 0007_admit_batch.sql,
`test_two_replicas_never_admit_past_a_quota` fails (each round admits about twice the limit).
`test_the_race_is_real_without_the_row_lock` keeps that proof in the suite: it installs the
function without the lock and asserts the overcount, so the forcing cannot silently stop working.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from mcp_gateway.store.base import Counter, Refusal
from mcp_gateway.store.migrate import migration_files
from mcp_gateway.store.postgres import PostgresStore

GATE = 716_016  # advisory lock key the test holds while batches line up
ROUNDS = 6
PER_REPLICA = 150  # calls per replica per round: one goes alone, the rest as one batch
LIMIT = 200  # below the 300 calls of a round, above what one replica alone offers

GATE_TRIGGER = f"""
CREATE FUNCTION test_gate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Only batches wait: a lone mcp_admit increments atomically and is not what is tested here.
    IF current_query() LIKE '%mcp_admit_batch%' THEN
        PERFORM pg_advisory_xact_lock_shared({GATE});
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER test_gate BEFORE UPDATE ON quota_counters FOR EACH ROW EXECUTE FUNCTION test_gate();
"""

WAITING_BATCHES = """
SELECT count(*) FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid()
   AND wait_event_type = 'Lock' AND query LIKE '%mcp_admit_batch%'
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


async def wait_for_both_batches(control: asyncpg.Connection) -> None:
    """Event-based: poll PostgreSQL until both replicas have a batch blocked inside it."""
    async with asyncio.timeout(30):
        while await control.fetchval(WAITING_BATCHES) < 2:
            await asyncio.sleep(0.01)


async def play_round(
    first: PostgresStore, second: PostgresStore, control: asyncpg.Connection, scope: str
) -> tuple[int, int, int]:
    """One round on a fresh counter; returns (admitted by first, admitted by second, stored count)."""
    quota = [Counter(scope, "d:2026-12-02", LIMIT)]
    await control.execute("SELECT pg_advisory_lock($1)", GATE)
    try:
        calls = [
            asyncio.ensure_future(store.admit([], quota, sync_commit=False))
            for _ in range(PER_REPLICA)
            for store in (first, second)
        ]
        await wait_for_both_batches(control)
    finally:
        await control.execute("SELECT pg_advisory_unlock($1)", GATE)
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
        # Both replicas really took part in the round (each admitted at least its lone call).
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
