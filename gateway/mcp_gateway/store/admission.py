"""Admissions sent to PostgreSQL in batches: one round trip and one commit for every request
that arrived while the previous batch was in flight.

A lone request (no batch in flight) goes at once, as one `mcp_admit` call, so a quiet
gateway pays no added latency. Under load, requests queue behind the batch in flight and
go together as one `mcp_admit_batch` call (migrations/0007_admit_batch.sql), which
decides them in arrival order inside one transaction, each exactly as a lone `mcp_admit`
would at that point, so limits stay exact; it reads and writes each row once per batch
rather than once per request.

One batch in flight per replica at a time. A batch locks every row it may change up front
in one global order; PostgreSQL may still detect a deadlock when two replicas create the
same new rows at once (a key's first use), and such a batch is retried, as its
transaction was rolled back entirely.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg

MAX_BATCH = 128
DEADLOCK_RETRIES = 3

_ONE = "SELECT bucket_refused, level, counter_refused FROM mcp_admit($1, $2, $3, $4, $5, $6, $7)"
_MANY = "SELECT bucket_refused, level, counter_refused FROM mcp_admit_batch($1, $2, $3, $4, $5, $6, $7, $8, $9)"


@dataclass(frozen=True)
class Admission:
    """One request's rate buckets (key, rate, burst) and quota counters (scope, period, limit), each sorted."""

    buckets: list[tuple[str, float, float]]
    counters: list[tuple[str, str, int]]
    sync_commit: bool


Outcome = tuple[int | None, float | None, int | None]
"""(refusing bucket, its level, refusing counter): 1-based positions in the admission's lists."""


class AdmissionBatcher:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._queue: list[tuple[Admission, asyncio.Future[Outcome]]] = []
        self._sending = False
        self._draining: asyncio.Task[None] | None = None  # referenced, or the loop may drop it
        self.round_trips = 0
        self.deadlocks = 0

    async def admit(self, admission: Admission) -> Outcome:
        if not self._sending:
            self._sending = True
            try:
                return (await self._send([admission]))[0]
            finally:
                self._sending = False
                self._start_next()
        waiter: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append((admission, waiter))
        return await waiter

    def _start_next(self) -> None:
        if self._queue and not self._sending:
            self._sending = True
            self._draining = asyncio.get_running_loop().create_task(self._drain())
            self._draining.add_done_callback(self._cancelled_before_start)

    def _cancelled_before_start(self, task: asyncio.Task[None]) -> None:
        """A task cancelled before its first step never runs `_drain`'s cleanup: do it here.

        `_drain` clears `_draining` when it ends, so a task still named there never ran.
        """
        if self._draining is task:
            self._draining = None
            _fail(self._queue, RuntimeError("admission interrupted: the gateway is stopping"))
            self._queue = []
            self._sending = False

    async def _drain(self) -> None:
        """Send what queued up, batch after batch, until nothing waits (then a lone call goes at once again)."""
        batch: list[tuple[Admission, asyncio.Future[Outcome]]] = []
        try:
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                batch = [(admission, waiter) for admission, waiter in batch if not waiter.done()]
                if not batch:
                    continue
                try:
                    outcomes = await self._send([admission for admission, _ in batch])
                except Exception as exc:  # each request applies gateway.limitsWhenStoreDown itself
                    _fail(batch, exc)
                    continue
                for (_, waiter), outcome in zip(batch, outcomes, strict=True):
                    if not waiter.done():
                        waiter.set_result(outcome)
            batch = []
        except BaseException:  # cancelled (shutting down): nobody may wait forever
            _fail(batch + self._queue, RuntimeError("admission interrupted: the gateway is stopping"))
            self._queue = []
            raise
        finally:
            self._sending = False
            self._draining = None

    async def _send(self, admissions: list[Admission]) -> list[Outcome]:
        for attempt in range(DEADLOCK_RETRIES + 1):
            self.round_trips += 1
            try:
                if len(admissions) == 1:
                    row = await self._pool.fetchrow(_ONE, *_one_args(admissions[0]))
                    assert row is not None
                    return [_outcome(row)]
                rows = await self._pool.fetch(_MANY, *_batch_args(admissions))
                return [_outcome(row) for row in rows]
            except asyncpg.DeadlockDetectedError:
                self.deadlocks += 1
                if attempt == DEADLOCK_RETRIES:
                    raise
        raise AssertionError("unreachable")


def _fail(waiting: list[tuple[Admission, asyncio.Future[Outcome]]], exc: BaseException) -> None:
    for _, waiter in waiting:
        if not waiter.done():
            waiter.set_exception(exc)


def _outcome(row: asyncpg.Record) -> Outcome:
    return row["bucket_refused"], row["level"], row["counter_refused"]


def _one_args(admission: Admission) -> list[object]:
    buckets, counters = admission.buckets, admission.counters
    return [
        [b[0] for b in buckets],
        [b[1] for b in buckets],
        [b[2] for b in buckets],
        [c[0] for c in counters],
        [c[1] for c in counters],
        [c[2] for c in counters],
        admission.sync_commit,
    ]


def _batch_args(admissions: list[Admission]) -> list[object]:
    """The admissions' lists concatenated, and where each one's part starts (1-based; the last is one past the end)."""
    buckets = [b for a in admissions for b in a.buckets]
    counters = [c for a in admissions for c in a.counters]
    bucket_from, counter_from = [1], [1]
    for admission in admissions:
        bucket_from.append(bucket_from[-1] + len(admission.buckets))
        counter_from.append(counter_from[-1] + len(admission.counters))
    return [
        [b[0] for b in buckets],
        [b[1] for b in buckets],
        [b[2] for b in buckets],
        bucket_from,
        [c[0] for c in counters],
        [c[1] for c in counters],
        [c[2] for c in counters],
        counter_from,
        any(a.sync_commit for a in admissions),
    ]
