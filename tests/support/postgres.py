"""Throwaway databases on the real local PostgreSQL started by scripts/start-postgres.sh."""

from __future__ import annotations

import asyncio
import os
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg

DEFAULT_ADMIN_DSN = "postgresql://mcp_test:mcp_test@127.0.0.1:5432/postgres"


def admin_dsn() -> str:
    return os.environ.get("MCP_TEST_PG_ADMIN_DSN", DEFAULT_ADMIN_DSN)


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def _execute(sql: str) -> None:
    try:
        connection = await asyncpg.connect(admin_dsn(), timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        raise RuntimeError(
            f"PostgreSQL is not reachable at {admin_dsn()!r} ({exc}): run `make test`, which starts it"
        ) from exc
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def create_database() -> tuple[str, str]:
    """Create an empty database; return (name, dsn)."""
    name = f"mcp_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_execute(f'CREATE DATABASE "{name}"'))
    return name, _with_database(admin_dsn(), name)


def drop_database(name: str) -> None:
    asyncio.run(_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
