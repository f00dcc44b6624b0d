"""Versioned schema migrations: `migrations/NNNN_name.sql`, applied in order at start-up.

Applied versions are recorded in `schema_migrations`. An advisory lock makes
replicas starting together apply each migration exactly once.
"""

from __future__ import annotations

import itertools
import logging
import re
from importlib import resources

import asyncpg

log = logging.getLogger("mcp_gateway.store")

_LOCK_ID = 0x6D6370677779  # arbitrary, constant: "mcpgwy"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every packaged migration, in order."""
    folder = resources.files("mcp_gateway.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text()))
    found.sort()
    _refuse_shared_versions(found)
    return found


def _refuse_shared_versions(found: list[tuple[int, str, str]]) -> None:
    # Two branches adding the same number would otherwise fail half-way at start-up on a
    # primary-key violation; say which files collide instead.
    for (version, first, _), (following, second, _) in itertools.pairwise(found):
        if version == following:
            raise RuntimeError(f"migrations {version:04d}_{first} and {following:04d}_{second} share a version number")


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply pending migrations; return the versions applied now."""
    applied_now: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in migration_files():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
            log.info("applied schema migration %04d_%s", version, name)
            applied_now.append(version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    return applied_now
