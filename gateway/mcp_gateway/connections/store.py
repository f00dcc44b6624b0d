"""Where connections live: one row per (tenant, caller, profile, upstream), the refresh token sealed.

Only the sealed refresh token, its key id and metadata are stored; access tokens stay in
process memory (service.py). PostgreSQL rows are shared by every replica (migration
0012_upstream_connections); the in-memory store serves a gateway without a database.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

import asyncpg


@dataclass(frozen=True)
class ConnectionKey:
    tenant: str
    caller: str  # the MCP caller, e.g. "sub:<subject>"
    profile: str
    upstream: str

    def aad(self) -> bytes:
        """Associated data: a sealed token only opens for the row it was written for."""
        return "\x1f".join(("conn", self.tenant, self.caller, self.profile, self.upstream)).encode()


@dataclass(frozen=True)
class StoredConnection:
    key: ConnectionKey
    key_id: str
    sealed_refresh: bytes
    scopes: str
    created_at: datetime
    updated_at: datetime


class ConnectionStore(Protocol):
    async def get(self, key: ConnectionKey) -> StoredConnection | None: ...
    async def put(self, row: StoredConnection) -> None: ...
    async def delete(self, key: ConnectionKey) -> bool: ...
    async def of_caller(self, tenant: str, caller: str) -> list[StoredConnection]: ...


class MemoryConnections:
    def __init__(self) -> None:
        self._rows: dict[ConnectionKey, StoredConnection] = {}

    async def get(self, key: ConnectionKey) -> StoredConnection | None:
        return self._rows.get(key)

    async def put(self, row: StoredConnection) -> None:
        old = self._rows.get(row.key)
        self._rows[row.key] = replace(row, created_at=old.created_at) if old else row

    async def delete(self, key: ConnectionKey) -> bool:
        return self._rows.pop(key, None) is not None

    async def of_caller(self, tenant: str, caller: str) -> list[StoredConnection]:
        rows = [r for k, r in self._rows.items() if k.tenant == tenant and k.caller == caller]
        return sorted(rows, key=lambda r: (r.key.profile, r.key.upstream))


class PostgresConnections:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def get(self, key: ConnectionKey) -> StoredConnection | None:
        row = await self.pool.fetchrow(
            "SELECT key_id, sealed_refresh, scopes, created_at, updated_at FROM upstream_connections"
            " WHERE tenant = $1 AND caller = $2 AND profile = $3 AND upstream = $4",
            key.tenant,
            key.caller,
            key.profile,
            key.upstream,
        )
        return None if row is None else _row(key, row)

    async def put(self, row: StoredConnection) -> None:
        await self.pool.execute(
            "INSERT INTO upstream_connections"
            " (tenant, caller, profile, upstream, key_id, sealed_refresh, scopes, created_at, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)"
            " ON CONFLICT (tenant, caller, profile, upstream) DO UPDATE SET key_id = EXCLUDED.key_id,"
            " sealed_refresh = EXCLUDED.sealed_refresh, scopes = EXCLUDED.scopes, updated_at = EXCLUDED.updated_at",
            row.key.tenant,
            row.key.caller,
            row.key.profile,
            row.key.upstream,
            row.key_id,
            row.sealed_refresh,
            row.scopes,
            row.updated_at,
        )

    async def delete(self, key: ConnectionKey) -> bool:
        status = await self.pool.execute(
            "DELETE FROM upstream_connections WHERE tenant = $1 AND caller = $2 AND profile = $3 AND upstream = $4",
            key.tenant,
            key.caller,
            key.profile,
            key.upstream,
        )
        return str(status).endswith(" 1")

    async def of_caller(self, tenant: str, caller: str) -> list[StoredConnection]:
        rows = await self.pool.fetch(
            "SELECT profile, upstream, key_id, sealed_refresh, scopes, created_at, updated_at"
            " FROM upstream_connections WHERE tenant = $1 AND caller = $2 ORDER BY profile, upstream",
            tenant,
            caller,
        )
        return [_row(ConnectionKey(tenant, caller, r["profile"], r["upstream"]), r) for r in rows]


def _row(key: ConnectionKey, row: asyncpg.Record) -> StoredConnection:
    return StoredConnection(
        key, row["key_id"], bytes(row["sealed_refresh"]), row["scopes"], row["created_at"], row["updated_at"]
    )


def now() -> datetime:
    return datetime.now(UTC)
