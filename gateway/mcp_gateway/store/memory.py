"""In-process state: one replica, nothing survives a restart (the local default)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from mcp_gateway.auth.apikeys import ApiKeyRecord
from mcp_gateway.store.base import AuditQuery, AuditRecord, Bucket, Counter, Listener


class MemoryStore:
    shared = False

    def __init__(self) -> None:
        self._keys: dict[str, ApiKeyRecord] = {}
        self._counters: dict[tuple[str, str], int] = {}
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, monotonic time)
        self._audit: list[AuditRecord] = []
        self._audit_uids: set[str] = set()
        self._secrets: dict[str, bytes] = {}
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
            for counter in counters:
                if self._counters.get((counter.scope, counter.period), 0) >= counter.limit:
                    return counter
            for counter in counters:
                slot = (counter.scope, counter.period)
                self._counters[slot] = self._counters.get(slot, 0) + 1
            return None

    async def usage(self, scope_prefix: str) -> list[tuple[str, str, int]]:
        return sorted((s, p, n) for (s, p), n in self._counters.items() if s.startswith(scope_prefix))

    async def take(self, buckets: list[Bucket]) -> tuple[Bucket, float] | None:
        async with self._lock:
            now = time.monotonic()
            levels = {}
            for bucket in buckets:
                tokens, at = self._buckets.get(bucket.key, (float(bucket.burst), now))
                level = min(float(bucket.burst), tokens + (now - at) * bucket.rate)
                if level < 1.0:
                    return bucket, (1.0 - level) / bucket.rate
                levels[bucket.key] = level
            for key, level in levels.items():
                self._buckets[key] = (level - 1.0, now)
            return None

    async def write_audit(self, records: list[AuditRecord]) -> None:
        for record in records:
            if record.uid in self._audit_uids:
                continue
            self._audit_uids.add(record.uid)
            record.id = len(self._audit) + 1
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

    async def shared_secret(self, name: str, generate: bytes) -> bytes:
        return self._secrets.setdefault(name, generate)

    async def revoke_session(self, nonce: str, expires_at: datetime) -> None:
        now = datetime.now(UTC)
        self._revoked = {n: at for n, at in self._revoked.items() if at > now}
        self._revoked[nonce] = expires_at
        await self.publish({"kind": "revoked", "session": nonce})

    async def revoked_sessions(self) -> list[str]:
        now = datetime.now(UTC)
        return [n for n, at in self._revoked.items() if at > now]

    async def publish(self, payload: dict[str, Any]) -> None:
        for listener in list(self._listeners):
            await listener(payload)

    async def listen(self, handler: Listener) -> None:
        self._listeners.append(handler)
