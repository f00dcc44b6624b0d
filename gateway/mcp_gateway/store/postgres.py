"""PostgreSQL state shared by every gateway replica (asyncpg).

Quota counting is exact under concurrency: each counter is bumped by one
`INSERT ... ON CONFLICT DO UPDATE ... WHERE used < limit RETURNING`, whose
row lock serializes concurrent callers; all counters of one call change in one
transaction (in a fixed order, so two calls never deadlock) or not at all.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from mcp_gateway.auth.apikeys import ApiKeyRecord
from mcp_gateway.store.base import AuditQuery, AuditRecord, Bucket, Counter
from mcp_gateway.store.migrate import migrate

log = logging.getLogger("mcp_gateway.store")

_BUMP = """
INSERT INTO quota_counters AS q (scope, period, used) VALUES ($1, $2, 1)
ON CONFLICT (scope, period) DO UPDATE SET used = q.used + 1, updated_at = now()
WHERE q.used < $3
RETURNING used
"""

# A bucket's level now: its stored tokens plus the refill since it was last touched, capped at burst.
_TAKE = """
INSERT INTO rate_buckets AS b (key, tokens, updated_at) VALUES ($1, $3::float8 - 1, clock_timestamp())
ON CONFLICT (key) DO UPDATE
SET tokens = LEAST($3::float8, b.tokens + $2::float8 * EXTRACT(EPOCH FROM clock_timestamp() - b.updated_at)) - 1,
    updated_at = clock_timestamp()
WHERE LEAST($3::float8, b.tokens + $2::float8 * EXTRACT(EPOCH FROM clock_timestamp() - b.updated_at)) >= 1
RETURNING tokens
"""
_PEEK = """
SELECT LEAST($3::float8, b.tokens + $2::float8 * EXTRACT(EPOCH FROM clock_timestamp() - b.updated_at)) AS level
FROM rate_buckets b WHERE key = $1
"""


class _Refused(Exception):
    def __init__(self, item: Any) -> None:
        self.item = item


class PostgresStore:
    shared = True

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("store not started")
        return self._pool

    async def start(self) -> None:
        self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=10, timeout=10, command_timeout=10)
        async with self.pool.acquire() as conn:
            await migrate(conn)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    async def ready(self) -> bool:
        try:
            async with self.pool.acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1")
            return True
        except (OSError, asyncpg.PostgresError, TimeoutError, RuntimeError):
            return False

    # --- API keys -----------------------------------------------------------

    async def insert_key(self, record: ApiKeyRecord) -> None:
        await self.pool.execute(
            "INSERT INTO api_keys (id, prefix, key_hash, tenant, profiles, name, expires_at, created_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            record.id,
            record.prefix,
            record.key_hash,
            record.tenant,
            record.profiles,
            record.name,
            record.expires_at,
            record.created_at,
        )

    async def key_by_prefix(self, prefix: str) -> ApiKeyRecord | None:
        row = await self.pool.fetchrow("SELECT * FROM api_keys WHERE prefix = $1", prefix)
        return _key(row) if row else None

    async def get_key(self, key_id: str) -> ApiKeyRecord | None:
        try:
            row = await self.pool.fetchrow("SELECT * FROM api_keys WHERE id = $1::uuid", key_id)
        except asyncpg.DataError:
            return None
        return _key(row) if row else None

    async def list_keys(self, tenant: str | None) -> list[ApiKeyRecord]:
        rows = await self.pool.fetch(
            "SELECT * FROM api_keys WHERE $1::text IS NULL OR tenant = $1 ORDER BY created_at", tenant
        )
        return [_key(row) for row in rows]

    async def revoke_key(self, key_id: str) -> bool:
        try:
            status = await self.pool.execute(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1::uuid", key_id
            )
        except asyncpg.DataError:
            return False
        return bool(status.endswith(" 1"))

    # --- quotas and rate limits ---------------------------------------------

    async def consume(self, counters: list[Counter]) -> Counter | None:
        for counter in counters:
            if counter.limit <= 0:
                return counter
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                for counter in sorted(counters, key=lambda c: (c.scope, c.period)):
                    used = await conn.fetchval(_BUMP, counter.scope, counter.period, counter.limit)
                    if used is None:
                        raise _Refused(counter)
        except _Refused as refused:
            return refused.item
        return None

    async def usage(self, scope_prefix: str) -> list[tuple[str, str, int]]:
        rows = await self.pool.fetch(
            "SELECT scope, period, used FROM quota_counters WHERE starts_with(scope, $1) ORDER BY scope, period",
            scope_prefix,
        )
        return [(row["scope"], row["period"], int(row["used"])) for row in rows]

    async def take(self, buckets: list[Bucket]) -> tuple[Bucket, float] | None:
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                for bucket in sorted(buckets, key=lambda b: b.key):
                    left = await conn.fetchval(_TAKE, bucket.key, bucket.rate, float(bucket.burst))
                    if left is None:
                        level = await conn.fetchval(_PEEK, bucket.key, bucket.rate, float(bucket.burst))
                        raise _Refused((bucket, max(0.0, (1.0 - float(level or 0.0)) / bucket.rate)))
        except _Refused as refused:
            return refused.item
        return None

    # --- audit --------------------------------------------------------------

    async def write_audit(self, records: list[AuditRecord]) -> None:
        await self.pool.executemany(
            "INSERT INTO audit_log (at, tenant, profile, caller, tool, outcome, latency_ms, arguments, error)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            [
                (r.at, r.tenant, r.profile, r.caller, r.tool, r.outcome, r.latency_ms, r.arguments, r.error)
                for r in records
            ],
        )

    async def query_audit(self, query: AuditQuery) -> list[AuditRecord]:
        rows = await self.pool.fetch(
            "SELECT * FROM audit_log WHERE ($1::text IS NULL OR tenant = $1) AND ($2::text IS NULL OR profile = $2)"
            " AND ($3::text IS NULL OR tool = $3) AND ($4::bigint IS NULL OR id < $4) ORDER BY id DESC LIMIT $5",
            query.tenant,
            query.profile,
            query.tool,
            query.before_id,
            query.limit,
        )
        return [
            AuditRecord(
                id=row["id"],
                at=row["at"],
                tenant=row["tenant"],
                profile=row["profile"],
                caller=row["caller"],
                tool=row["tool"],
                outcome=row["outcome"],
                latency_ms=row["latency_ms"],
                arguments=row["arguments"],
                error=row["error"],
            )
            for row in rows
        ]

    async def shared_secret(self, name: str, generate: bytes) -> bytes:
        await self.pool.execute(
            "INSERT INTO gateway_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", name, generate
        )
        value = await self.pool.fetchval("SELECT value FROM gateway_secrets WHERE name = $1", name)
        return bytes(value)


def _key(row: asyncpg.Record) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=str(row["id"]),
        prefix=row["prefix"],
        key_hash=row["key_hash"],
        tenant=row["tenant"],
        profiles=list(row["profiles"]),
        name=row["name"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        created_at=row["created_at"],
    )
