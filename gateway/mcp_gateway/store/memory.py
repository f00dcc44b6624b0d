"""In-process state: one replica, nothing survives a restart (the local default).

Everything is bounded: the audit log keeps the newest `AUDIT_KEPT` records (and
the uids of about as many, for idempotent writes), quota counters of past days
and months are dropped when a new period starts, full rate buckets (the same as
absent ones) and used requestState digests past their expiry are pruned as the
tables grow.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

from mcp_gateway.auth.apikeys import ApiKeyRecord
from mcp_gateway.store.base import AuditQuery, AuditRecord, Bucket, Counter, Listener, Refusal, nested_prefix

AUDIT_KEPT = 20_000
PRUNE_MIN = 1024  # a table is pruned when it doubles past its size after the last pruning (at least this)


def _grown(size: int, mark: int) -> bool:
    return size > max(mark, PRUNE_MIN)


class MemoryStore:
    shared = False

    def __init__(self) -> None:
        self._keys: dict[str, ApiKeyRecord] = {}
        self._counters: dict[tuple[str, str], int] = {}
        self._periods: dict[str, str] = {}  # period kind ("d:", "m:") -> the latest period counted
        # key -> (tokens, monotonic time, rate, burst)
        self._buckets: dict[str, tuple[float, float, float, float]] = {}
        self._buckets_mark = 0
        self._audit: deque[AuditRecord] = deque(maxlen=AUDIT_KEPT)
        self._audit_uids: dict[str, None] = {}  # insertion-ordered: the oldest are forgotten first
        self._audit_next_id = 1
        self._continuations: dict[bytes, datetime] = {}
        self._continuations_mark = 0
        self._lock = asyncio.Lock()
        self._revoked: dict[str, datetime] = {}
        self._listeners: list[Listener] = []

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ready(self) -> bool:
        return True

    async def insert_key(self, record: ApiKeyRecord) -> None:
        self._keys[record.id] = record

    async def key_by_prefix(self, prefix: str) -> ApiKeyRecord | None:
        return next((k for k in self._keys.values() if k.prefix == prefix), None)

    async def get_key(self, key_id: str) -> ApiKeyRecord | None:
        return self._keys.get(key_id)

    async def list_keys(self, tenant: str | None) -> list[ApiKeyRecord]:
        return [k for k in self._keys.values() if tenant is None or k.tenant == tenant]

    async def revoke_key(self, key_id: str) -> bool:
        record = self._keys.get(key_id)
        if record is None:
            return False
        if record.revoked_at is None:
            record.revoked_at = datetime.now(UTC)
        return True

    async def consume(self, counters: list[Counter]) -> Counter | None:
        async with self._lock:
            self._roll_periods(counters)
            for counter in counters:
                if self._counters.get((counter.scope, counter.period), 0) >= counter.limit:
                    return counter
            for counter in counters:
                slot = (counter.scope, counter.period)
                self._counters[slot] = self._counters.get(slot, 0) + 1
            return None

    def _roll_periods(self, counters: list[Counter]) -> None:
        """A new day or month started: forget the counters of the periods before it."""
        latest = {c.period[:2]: c.period for c in counters}
        if all(self._periods.get(kind) == period for kind, period in latest.items()):
            return
        self._periods.update(latest)
        self._counters = {
            slot: used for slot, used in self._counters.items() if self._periods.get(slot[1][:2], slot[1]) == slot[1]
        }

    async def usage(self, scope: str, *, nested: bool = False) -> list[tuple[str, str, int]]:
        if nested:
            prefix = nested_prefix(scope)
            return sorted((s, p, n) for (s, p), n in self._counters.items() if s.startswith(prefix))
        return sorted((s, p, n) for (s, p), n in self._counters.items() if s == scope)

    async def take(self, buckets: list[Bucket]) -> tuple[Bucket, float] | None:
        async with self._lock:
            now = time.monotonic()
            levels = {}
            for bucket in buckets:
                tokens, at, _, _ = self._buckets.get(bucket.key, (float(bucket.burst), now, 0.0, 0.0))
                level = min(float(bucket.burst), tokens + (now - at) * bucket.rate)
                if level < 1.0:
                    return bucket, (1.0 - level) / bucket.rate
                levels[bucket.key] = (level, bucket)
            for key, (level, bucket) in levels.items():
                self._buckets[key] = (level - 1.0, now, bucket.rate, float(bucket.burst))
            if _grown(len(self._buckets), self._buckets_mark):
                self._prune_buckets(now)
            return None

    async def admit(self, buckets: list[Bucket], counters: list[Counter], *, sync_commit: bool) -> Refusal | None:
        empty = await self.take(buckets) if buckets else None
        if empty is not None:
            return Refusal(bucket=empty[0], wait_seconds=empty[1])
        exhausted = await self.consume(counters) if counters else None
        return None if exhausted is None else Refusal(counter=exhausted)

    def _prune_buckets(self, now: float) -> None:
        # A bucket that has refilled to its burst is the same as one never used.
        self._buckets = {key: b for key, b in self._buckets.items() if b[0] + (now - b[1]) * b[2] < b[3]}
        self._buckets_mark = 2 * len(self._buckets)

    async def write_audit(self, records: list[AuditRecord]) -> None:
        for record in records:
            if record.uid in self._audit_uids:
                continue
            self._audit_uids[record.uid] = None
            if len(self._audit_uids) > 2 * AUDIT_KEPT:
                del self._audit_uids[next(iter(self._audit_uids))]
            record.id = self._audit_next_id
            self._audit_next_id += 1
            record.at = record.at or datetime.now(UTC)
            self._audit.append(record)

    async def query_audit(self, query: AuditQuery) -> list[AuditRecord]:
        out: list[AuditRecord] = []
        for record in reversed(self._audit):
            if query.before_id is not None and (record.id or 0) >= query.before_id:
                continue
            if query.tenant and record.tenant != query.tenant:
                continue
            if query.profile and record.profile != query.profile:
                continue
            if query.tool and record.tool != query.tool:
                continue
            out.append(record)
            if len(out) >= query.limit:
                break
        return out

    async def revoke_session(self, nonce: str, expires_at: datetime) -> None:
        now = datetime.now(UTC)
        self._revoked = {n: at for n, at in self._revoked.items() if at > now}
        self._revoked[nonce] = expires_at
        await self.publish({"kind": "revoked", "session": nonce, "expires": expires_at.timestamp()})

    async def revoked_sessions(self) -> list[tuple[str, datetime]]:
        now = datetime.now(UTC)
        return [(n, at) for n, at in self._revoked.items() if at > now]

    async def claim_continuation(self, digest: bytes, expires_at: datetime) -> bool:
        now = datetime.now(UTC)
        seen = self._continuations.get(digest)
        if seen is not None and seen > now:
            return False
        self._continuations[digest] = expires_at
        if _grown(len(self._continuations), self._continuations_mark):
            self._continuations = {d: at for d, at in self._continuations.items() if at > now}
            self._continuations_mark = 2 * len(self._continuations)
        return True

    async def publish(self, payload: dict[str, Any]) -> None:
        for listener in list(self._listeners):
            await listener(payload)

    async def listen(self, handler: Listener) -> None:
        self._listeners.append(handler)
