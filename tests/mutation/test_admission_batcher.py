"""store/admission.py's batcher against real PostgreSQL, with faults injected inside it: a
deadlocked transaction is retried (up to DEADLOCK_RETRIES times), a failed batch fails exactly
its own requests and the batcher goes on, and a batcher stopped mid-batch releases every waiting
request with an error instead of leaving it hanging (mutation-tested).

Faults come from a trigger on `rate_buckets` that the test installs in its own database: it
raises the SQLSTATE the test asks for on the first N updates of buckets whose key starts with
`fail:` (a sequence counts them: it is not rolled back with the failed transaction), and parks
buckets whose key starts with `hold:` or `park:` on advisory locks the test holds: a parked lone
admission keeps the batcher busy, so that the next requests queue up and leave as batches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from mcp_gateway.store.admission import Admission, AdmissionBatcher
from mcp_gateway.store.postgres import PostgresStore

# A mutant that leaves a request waiting forever fails here within the bound instead of holding a
# mutation worker until mutmut's own wall-clock limit (minutes): a hang guard, not a speed check.
pytestmark = pytest.mark.timeout(30)

HOLD = 716_031  # parks the lone "holder" admission (the number is in FAULTS too)
PARK = 716_032  # parks a batch (ditto)
FAULTS = """
CREATE SEQUENCE test_fault_count;
CREATE TABLE test_fault_plan (errcode text NOT NULL, times int NOT NULL);
CREATE FUNCTION test_fault() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE plan record;
BEGIN
    IF NEW.key LIKE 'hold:%' THEN
        PERFORM pg_advisory_xact_lock_shared(716031);
    ELSIF NEW.key LIKE 'park:%' THEN
        PERFORM pg_advisory_xact_lock_shared(716032);
    ELSIF NEW.key LIKE 'fail:%' THEN
        SELECT * INTO plan FROM test_fault_plan;
        IF FOUND AND nextval('test_fault_count') <= plan.times THEN
            RAISE EXCEPTION 'injected fault' USING ERRCODE = plan.errcode;
        END IF;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER test_fault BEFORE INSERT OR UPDATE ON rate_buckets FOR EACH ROW EXECUTE FUNCTION test_fault();
"""
DEADLOCK = "40P01"
WAITING = """
SELECT count(*) FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'
"""


def bucket(key: str, burst: float = 1000) -> Admission:
    return Admission([(key, 0.001, burst)], [], sync_commit=False)


def quota(scope: str, limit: int) -> Admission:
    return Admission([], [(scope, "d:2026-12-02", limit)], sync_commit=False)


class Faults:
    def __init__(self, control: asyncpg.Connection) -> None:
        self.control = control

    async def plan(self, errcode: str, times: int) -> None:
        await self.control.execute("DELETE FROM test_fault_plan")
        await self.control.execute("INSERT INTO test_fault_plan VALUES ($1, $2)", errcode, times)
        await self.control.execute("ALTER SEQUENCE test_fault_count RESTART")

    async def parked(self, count: int) -> None:
        """Wait until `count` transactions wait on the hold lock inside PostgreSQL."""
        for _ in range(400):
            if await self.control.fetchval(WAITING) >= count:
                return
            await asyncio.sleep(0.025)
        raise AssertionError("the held admission never reached PostgreSQL")


@pytest.fixture
async def batcher(pg_dsn: str) -> AsyncIterator[tuple[AdmissionBatcher, Faults]]:
    store = PostgresStore(pg_dsn)
    await store.start()  # applies the migrations
    control = await asyncpg.connect(pg_dsn)
    await control.execute(FAULTS)
    try:
        yield AdmissionBatcher(store.pool), Faults(control)
    finally:
        await control.close()
        await store.close()


async def test_a_deadlocked_admission_is_retried_then_given_up(batcher: tuple[AdmissionBatcher, Faults]) -> None:
    admissions, faults = batcher
    assert (admissions.round_trips, admissions.deadlocks) == (0, 0)
    assert await admissions.admit(bucket("fail:a", burst=1)) == (None, None, None)
    assert admissions.round_trips == 1

    await faults.plan(DEADLOCK, 3)  # DEADLOCK_RETRIES
    # Retried until it went through; the retries did not spend the bucket's only token twice.
    assert await admissions.admit(bucket("fail:b", burst=1)) == (None, None, None)
    assert (admissions.round_trips, admissions.deadlocks) == (5, 3)
    refused = await admissions.admit(bucket("fail:b", burst=1))
    assert refused[0] == 1 and refused[2] is None

    await faults.plan(DEADLOCK, 4)
    with pytest.raises(asyncpg.DeadlockDetectedError):
        await admissions.admit(bucket("fail:c"))
    assert (admissions.round_trips, admissions.deadlocks) == (10, 7)
    # Other errors are not retried.
    await faults.plan("XX000", 1)
    with pytest.raises(asyncpg.InternalServerError):
        await admissions.admit(bucket("fail:d"))
    assert (admissions.round_trips, admissions.deadlocks) == (11, 7)
    assert await admissions.admit(bucket("fail:d")) == (None, None, None)


async def hold(admissions: AdmissionBatcher, faults: Faults) -> asyncio.Task[object]:
    """A lone admission parked inside PostgreSQL: the batcher is busy until the lock is released."""
    await faults.control.execute("SELECT pg_advisory_lock($1)", HOLD)
    holder = asyncio.ensure_future(admissions.admit(bucket("hold:x")))
    await faults.parked(1)
    return holder


async def test_queued_admissions_go_as_batches_and_a_failed_batch_fails_only_its_own(
    batcher: tuple[AdmissionBatcher, Faults],
) -> None:
    admissions, faults = batcher
    # A bucket that never refills in the test's lifetime: a refusal reports its level, from which the
    # gateway computes Retry-After; a refill at any other rate (e.g. the burst's) shows in that level.
    tiny = Admission([("tiny", 1e-9, 1.0)], [], sync_commit=False)
    assert await admissions.admit(tiny) == (None, None, None)
    lone = await admissions.admit(tiny)
    assert lone[0] == 1 and lone[1] is not None and lone[1] < 1e-6 and lone[2] is None

    holder = await hold(admissions, faults)
    # Four batches queue behind the holder (MAX_BATCH 128 each): requests that all gave up before
    # their batch left (not sent), one that fails as a whole, one decided by a quota, and a pair.
    gone = [asyncio.ensure_future(admissions.admit(quota("tenant:gone", 1))) for _ in range(128)]
    failing = [asyncio.ensure_future(admissions.admit(bucket("fail:x")))]
    failing += [asyncio.ensure_future(admissions.admit(quota("tenant:b", 2))) for _ in range(127)]
    decided = [asyncio.ensure_future(admissions.admit(quota("tenant:a", 100))) for _ in range(128)]
    pair = [asyncio.ensure_future(admissions.admit(a)) for a in (tiny, quota("tenant:d", 1))]
    await asyncio.sleep(0)
    for waiter in gone:
        waiter.cancel()
    await faults.plan("XX000", 1)
    trips = admissions.round_trips  # the holder's included
    await faults.control.execute("SELECT pg_advisory_unlock($1)", HOLD)

    assert await holder == (None, None, None)
    for waiter in failing:
        with pytest.raises(asyncpg.InternalServerError):
            await waiter
    # The batches after a failed one still go, each decided in arrival order inside one transaction.
    outcomes = await asyncio.gather(*decided)
    assert outcomes[:100] == [(None, None, None)] * 100 and outcomes[100:] == [(None, None, 1)] * 28
    refused, admitted = await asyncio.gather(*pair)
    assert refused[0] == 1 and refused[1] is not None and refused[1] < 1e-6 and refused[2] is None
    assert admitted == (None, None, None)
    assert all(waiter.cancelled() for waiter in gone)
    assert admissions.round_trips == trips + 3  # one round trip per batch sent; none for the given-up one
    # The batcher goes on: a lone request goes at once again, and the failed batch counted nothing.
    assert await admissions.admit(quota("tenant:b", 2)) == (None, None, None)
    assert await admissions.admit(quota("tenant:b", 2)) == (None, None, None)
    assert await admissions.admit(quota("tenant:b", 2)) == (None, None, 1)
    assert admissions.round_trips == trips + 6


async def test_a_stopped_batcher_releases_every_waiting_request(batcher: tuple[AdmissionBatcher, Faults]) -> None:
    admissions, faults = batcher
    await faults.control.execute("SELECT pg_advisory_lock($1)", PARK)
    holder = await hold(admissions, faults)
    held = [asyncio.ensure_future(admissions.admit(bucket(f"park:{i}"))) for i in range(2)]
    await asyncio.sleep(0)
    await faults.control.execute("SELECT pg_advisory_unlock($1)", HOLD)
    assert await holder == (None, None, None)
    # The queued pair left as one batch, which now waits inside PostgreSQL; more queue behind it.
    await faults.parked(1)
    queued = [asyncio.ensure_future(admissions.admit(bucket("tenant:z"))) for _ in range(2)]
    await asyncio.sleep(0)
    draining = admissions._draining
    assert draining is not None
    draining.cancel()  # what the event loop does to it when the gateway stops
    for waiter in [*held, *queued]:
        with pytest.raises(RuntimeError) as interrupted:
            await waiter
        assert str(interrupted.value) == "admission interrupted: the gateway is stopping"
    await faults.control.execute("SELECT pg_advisory_unlock($1)", PARK)
    assert admissions._queue == []
    assert await admissions.admit(bucket("tenant:z")) == (None, None, None)  # not stuck "sending"


async def test_a_drain_cancelled_before_its_first_step_still_releases_the_queue(
    batcher: tuple[AdmissionBatcher, Faults],
) -> None:
    """The loop may cancel the drain task before it ever runs (the gateway stopping right after a
    lone admission finished): its own cleanup never runs, so the queue is released by its callback."""
    admissions, faults = batcher
    holder = await hold(admissions, faults)
    queued = [asyncio.ensure_future(admissions.admit(bucket(f"late:{i}"))) for i in range(2)]
    await asyncio.sleep(0)
    await faults.control.execute("SELECT pg_advisory_unlock($1)", HOLD)
    started = asyncio.get_running_loop().create_future()
    real_start_next = admissions._start_next

    def start_then_cancel() -> None:  # the drain task is cancelled in the step that creates it
        real_start_next()
        assert admissions._draining is not None
        admissions._draining.cancel()
        started.set_result(None)

    admissions._start_next = start_then_cancel  # type: ignore[method-assign]
    assert await holder == (None, None, None)
    await started
    for waiter in queued:
        with pytest.raises(RuntimeError, match="the gateway is stopping"):
            await asyncio.wait_for(waiter, 10)
    admissions._start_next = real_start_next  # type: ignore[method-assign]
    assert admissions._queue == [] and admissions._draining is None
    assert await admissions.admit(bucket("late:z")) == (None, None, None)  # not stuck "sending"
