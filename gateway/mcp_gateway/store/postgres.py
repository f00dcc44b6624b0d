"""PostgreSQL state shared by every gateway replica (asyncpg).

Quota counting is exact under concurrency: each counter is bumped by one
`INSERT ... ON CONFLICT DO UPDATE ... WHERE used < limit`, whose row lock
serializes concurrent callers; all counters of one call change together (in a
fixed order, so two calls never deadlock) or not at all. Rate buckets work the
same way. Both run server-side (migrations/0003_admission_functions.sql); a
request's whole admission, buckets then counters, is one function call
(0006_admit.sql), and requests arriving while one is in flight share the next
call (admission.py, 0007_admit_batch.sql): at most one round trip per request.
API key records are cached by prefix (key_cache.py); revocations reach every
replica's cache through NOTIFY.

Housekeeping (every `HOUSEKEEPING_SECONDS`, from the LISTEN loop's idle probe):
quota counters of days before yesterday and months before last month, rate
buckets idle for a day (a day refills any bucket faster than 1 token per
`burst`/86400 s; one slower restarts full), used requestState digests and ended
sessions past their expiry, and relayed messages older than ten minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import datetime
from typing import Any

import asyncpg

from mcp_gateway.auth.apikeys import ApiKeyRecord
from mcp_gateway.store.admission import Admission, AdmissionBatcher
from mcp_gateway.store.base import AuditQuery, AuditRecord, Bucket, Counter, Listener, Refusal, nested_prefix
from mcp_gateway.store.key_cache import KeyCache
from mcp_gateway.store.migrate import migrate

log = logging.getLogger("mcp_gateway.store")


# Replica messages ride NOTIFY; bodies over the payload limit (8000 bytes) go through relay_messages.
CHANNEL = "mcp_gateway"
KEY_REVOKED = "key-revoked"
NOTIFY_LIMIT = 7000
LISTEN_PROBE_SECONDS = 5.0
HOUSEKEEPING_SECONDS = 300.0
HOUSEKEEPING = (
    "DELETE FROM quota_counters WHERE (starts_with(period, 'd:')"
    " AND period < 'd:' || to_char((now() AT TIME ZONE 'UTC') - interval '1 day', 'YYYY-MM-DD'))"
    " OR (starts_with(period, 'm:')"
    " AND period < 'm:' || to_char((now() AT TIME ZONE 'UTC') - interval '1 month', 'YYYY-MM'))",
    "DELETE FROM rate_buckets WHERE updated_at < now() - interval '1 day'",
    "DELETE FROM used_request_states WHERE expires_at < now()",
    "DELETE FROM revoked_sessions WHERE expires_at < now()",
    "DELETE FROM relay_messages WHERE created_at < now() - interval '10 minutes'",
)


class PostgresStore:
    shared = True

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._pool: asyncpg.Pool | None = None
        self._listening: asyncio.Task[None] | None = None
        self._handling: set[asyncio.Task[None]] = set()
        self._housekept_at = 0.0
        self._keys = KeyCache()
        self._admissions: AdmissionBatcher | None = None

    @property
    def admissions(self) -> AdmissionBatcher:
        if self._admissions is None:
            raise RuntimeError("store not started")
        return self._admissions

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("store not started")
        return self._pool

    async def start(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.dsn, min_size=1, max_size=10, timeout=10, command_timeout=10, reset=_keep_session
        )
        async with self.pool.acquire() as conn:
            await migrate(conn)
        self._admissions = AdmissionBatcher(self.pool)

    async def close(self) -> None:
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listening
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
            "INSERT INTO api_keys (id, prefix, key_hash, tenant, profiles, name, expires_at, created_at, labels)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)",
            record.id,
            record.prefix,
            record.key_hash,
            record.tenant,
            record.profiles,
            record.name,
            record.expires_at,
            record.created_at,
            json.dumps(record.labels),
        )

    async def key_by_prefix(self, prefix: str) -> ApiKeyRecord | None:
        cached = self._keys.get(prefix)
        if cached is not None:
            return cached
        row = await self.pool.fetchrow("SELECT * FROM api_keys WHERE prefix = $1", prefix)
        if row is None:
            return None
        record = _key(row)
        self._keys.put(record)
        return record

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
            prefix = await self.pool.fetchval(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1::uuid RETURNING prefix",
                key_id,
            )
        except asyncpg.DataError:
            return False
        if prefix is None:
            return False
        self._keys.forget(prefix)
        try:
            await self.publish({"kind": KEY_REVOKED, "prefix": prefix})
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            # Revoked all the same; other replicas' caches let the key go within KEY_CACHE_SECONDS.
            log.warning("could not tell other replicas about a revoked key: %s", type(exc).__name__)
        return True

    # --- quotas and rate limits ---------------------------------------------

    async def consume(self, counters: list[Counter]) -> Counter | None:
        for counter in counters:
            if counter.limit <= 0:
                return counter
        ordered = sorted(counters, key=lambda c: (c.scope, c.period))
        refused = await self.pool.fetchval(
            "SELECT mcp_consume_quota($1, $2, $3)",
            [c.scope for c in ordered],
            [c.period for c in ordered],
            [c.limit for c in ordered],
        )
        return None if refused is None else ordered[refused - 1]

    async def usage(self, scope: str, *, nested: bool = False) -> list[tuple[str, str, int]]:
        match = "starts_with(scope, $1)" if nested else "scope = $1"
        rows = await self.pool.fetch(
            f"SELECT scope, period, used FROM quota_counters WHERE {match} ORDER BY scope, period",  # noqa: S608 - fixed text
            nested_prefix(scope) if nested else scope,
        )
        return [(row["scope"], row["period"], int(row["used"])) for row in rows]

    async def admit(self, buckets: list[Bucket], counters: list[Counter], *, sync_commit: bool) -> Refusal | None:
        # A zero limit refuses without a row (the function's INSERT of a new counter does not check it).
        zero = next((c for c in counters if c.limit <= 0), None)
        if zero is not None:
            return await self._admit(buckets, [], sync_commit) or Refusal(counter=zero)
        return await self._admit(buckets, counters, sync_commit)

    async def _admit(self, buckets: list[Bucket], counters: list[Counter], sync_commit: bool) -> Refusal | None:
        ordered_buckets = sorted(buckets, key=lambda b: b.key)
        ordered_counters = sorted(counters, key=lambda c: (c.scope, c.period))
        admission = Admission(
            [(b.key, float(b.rate), float(b.burst)) for b in ordered_buckets],
            [(c.scope, c.period, c.limit) for c in ordered_counters],
            sync_commit,
        )
        bucket_refused, level, counter_refused = await self.admissions.admit(admission)
        if bucket_refused is not None:
            bucket = ordered_buckets[bucket_refused - 1]
            return Refusal(bucket=bucket, wait_seconds=_wait(bucket, level))
        if counter_refused is not None:
            return Refusal(counter=ordered_counters[counter_refused - 1])
        return None

    async def take(self, buckets: list[Bucket]) -> tuple[Bucket, float] | None:
        ordered = sorted(buckets, key=lambda b: b.key)
        row = await self.pool.fetchrow(
            "SELECT refused, level FROM mcp_take_tokens($1, $2, $3)",
            [b.key for b in ordered],
            [float(b.rate) for b in ordered],
            [float(b.burst) for b in ordered],
        )
        if row is None or row["refused"] is None:
            return None
        bucket = ordered[row["refused"] - 1]
        return bucket, _wait(bucket, row["level"])

    # --- audit --------------------------------------------------------------

    async def write_audit(self, records: list[AuditRecord]) -> None:
        await self.pool.executemany(
            "INSERT INTO audit_log"
            " (uid, at, tenant, profile, caller, tool, outcome, latency_ms, arguments, error, identity, rule, kind)"
            " VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12, $13)"
            " ON CONFLICT (uid) DO NOTHING",
            [
                (
                    *(r.uid, r.at, r.tenant, r.profile, r.caller, r.tool, r.outcome, r.latency_ms, r.arguments),
                    r.error,
                    json.dumps(r.identity) if r.identity is not None else None,
                    r.rule,
                    r.kind,
                )
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
                uid=str(row["uid"]) if row["uid"] else "",
                at=row["at"],
                tenant=row["tenant"],
                profile=row["profile"],
                caller=row["caller"],
                tool=row["tool"],
                outcome=row["outcome"],
                latency_ms=row["latency_ms"],
                arguments=row["arguments"],
                error=row["error"],
                identity=json.loads(row["identity"]) if row["identity"] is not None else None,
                rule=row["rule"],
                kind=row["kind"],
            )
            for row in rows
        ]

    # --- sessions and replica messages ------------------------------------------

    async def revoke_session(self, nonce: str, expires_at: datetime) -> None:
        await self.pool.execute(
            "INSERT INTO revoked_sessions (nonce, expires_at) VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING",
            nonce,
            expires_at,
        )
        await self.pool.execute("DELETE FROM revoked_sessions WHERE expires_at < now()")
        await self.publish({"kind": "revoked", "session": nonce, "expires": expires_at.timestamp()})

    async def revoked_sessions(self) -> list[tuple[str, datetime]]:
        rows = await self.pool.fetch("SELECT nonce, expires_at FROM revoked_sessions WHERE expires_at > now()")
        return [(row["nonce"], row["expires_at"]) for row in rows]

    async def claim_continuation(self, digest: bytes, expires_at: datetime) -> bool:
        claimed = await self.pool.fetchval(
            "INSERT INTO used_request_states (digest, expires_at) VALUES ($1, $2)"
            " ON CONFLICT (digest) DO NOTHING RETURNING 1",
            digest,
            expires_at,
        )
        return claimed is not None

    async def housekeep(self) -> None:
        """Drop rows nothing will read again (see the module docstring)."""
        self._housekept_at = time.monotonic()
        try:
            async with self.pool.acquire(timeout=5) as conn:
                for statement in HOUSEKEEPING:
                    await conn.execute(statement)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            log.warning("database housekeeping failed, retrying later: %s", type(exc).__name__)

    async def publish(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, separators=(",", ":"))
        if len(body.encode()) > NOTIFY_LIMIT:
            ref = await self.pool.fetchval("INSERT INTO relay_messages (body) VALUES ($1) RETURNING id", body)
            await self.pool.execute("DELETE FROM relay_messages WHERE created_at < now() - interval '10 minutes'")
            body = json.dumps({"ref": ref})
        await self.pool.execute("SELECT pg_notify($1, $2)", CHANNEL, body)

    async def listen(self, handler: Listener) -> None:
        self._listening = asyncio.get_running_loop().create_task(self._listen(handler), name="pg-listen")

    async def _listen(self, handler: Listener) -> None:
        """LISTEN on a dedicated connection; reconnect (and ask for a resync) when it drops."""
        connected_before = False
        while True:
            try:
                conn = await asyncpg.connect(self.dsn, timeout=10)
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("cannot LISTEN for replica messages, retrying: %s", type(exc).__name__)
                await asyncio.sleep(2)
                continue
            try:
                queue: asyncio.Queue[str] = asyncio.Queue()
                await conn.add_listener(CHANNEL, lambda *args, q=queue: q.put_nowait(str(args[3])))
                if connected_before:
                    self._keys.clear()  # revocations may have been missed while disconnected
                    self._spawn(handler({"kind": "resync"}))
                connected_before = True
                while True:
                    try:
                        body = await asyncio.wait_for(queue.get(), LISTEN_PROBE_SECONDS)
                    except TimeoutError:
                        await conn.execute("SELECT 1")  # notices a dead connection
                        if time.monotonic() - self._housekept_at > HOUSEKEEPING_SECONDS:
                            await self.housekeep()
                        continue
                    payload = await self._payload(body)
                    if payload is not None and payload.get("kind") == KEY_REVOKED:
                        self._keys.forget(str(payload.get("prefix")))
                    elif payload is not None:
                        self._spawn(handler(payload))
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("LISTEN connection lost, reconnecting: %s", type(exc).__name__)
            finally:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)

    async def _payload(self, body: str) -> dict[str, Any] | None:
        try:
            payload = json.loads(body)
            if isinstance(payload, dict) and set(payload) == {"ref"}:
                stored = await self.pool.fetchval("SELECT body FROM relay_messages WHERE id = $1", payload["ref"])
                payload = json.loads(stored) if stored else None
        except (ValueError, asyncpg.PostgresError, OSError):
            log.warning("dropped an unreadable replica message")
            return None
        return payload if isinstance(payload, dict) else None

    def _spawn(self, work: Any) -> None:
        async def guarded() -> None:
            try:
                await work
            except Exception:
                log.exception("handling a replica message failed")

        task = asyncio.get_running_loop().create_task(guarded())
        self._handling.add(task)
        task.add_done_callback(self._handling.discard)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool connections are handed back as they are, without asyncpg's reset query (a round trip per use).

    Nothing here leaves session state behind: no session-level SET (admission's is transaction-local),
    no LISTEN (that has its own connection), advisory locks only in `migrate`, which unlocks them.
    asyncpg itself still rolls back an open transaction on release.
    """


def _wait(bucket: Bucket, level: float | None) -> float:
    """Seconds until a bucket at `level` tokens has one."""
    return max(0.0, (1.0 - float(level or 0.0)) / bucket.rate)


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
        labels=json.loads(row["labels"]),
    )
