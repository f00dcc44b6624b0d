"""A copy of the database (dump, backup, read replica) is not enough to log in to the console.

The cookie's signing keys are derived from secrets that live only in the environment (the
API-key pepper, the session keys), so whoever holds every row of the database, including the
signing key older gateways stored there, still cannot forge a tenant session and mint API keys.
No other signing key (MCP sessions, sealed requestState) is stored in the database either.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import asyncpg
from mcp_gateway.console.session import Session, SessionCodec
from mcp_gateway.store.postgres import PostgresStore

from tests.console.support import Stack, csrf_of, routing, start_stack
from tests.console.tokens import console_login, forge, logged_in, mint_console_token, with_cookie
from tests.gateway.support import Spawn, mcp_client, start_feature, start_gateway, write_config

OLD_KEY_NAME = "console-session-key"  # where gateways before the fix kept the cookie key, in plain form


async def _as_before_the_fix(dsn: str, old_key: bytes) -> None:
    """A database as an older gateway left it: schema migrated, the console key stored in plain form."""
    store = PostgresStore(dsn)
    await store.start()
    await store.close()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DELETE FROM schema_migrations WHERE version = 8")  # the migration that drops the key
        await conn.execute("INSERT INTO gateway_secrets (name, value) VALUES ($1, $2)", OLD_KEY_NAME, old_key)
    finally:
        await conn.close()


async def _dump(dsn: str) -> tuple[dict[str, bytes], list[tuple[str, str]]]:
    """What an attacker with read access gets: every stored secret and every key's (id, tenant)."""
    conn = await asyncpg.connect(dsn)
    try:
        stored = {r["name"]: bytes(r["value"]) for r in await conn.fetch("SELECT name, value FROM gateway_secrets")}
        keys = [(str(r["id"]), r["tenant"]) for r in await conn.fetch("SELECT id, tenant FROM api_keys")]
    finally:
        await conn.close()
    return stored, keys


async def _open_mcp_session(url: str, key: str) -> None:
    async with mcp_client(url, {"Authorization": f"Bearer {key}"}) as client:
        await client.list_tools()


def _key_count(stack: Stack, tenant: str) -> int:
    with stack.gateway.admin() as admin:
        return len(admin.get(f"/admin/v1/tenants/{tenant}/keys").json())


def test_a_database_dump_cannot_forge_a_tenant_session(spawn: Spawn, tmp_path: Path, pg_dsn: str) -> None:
    old_key = secrets.token_bytes(32)
    asyncio.run(_as_before_the_fix(pg_dsn, old_key))
    stack = start_stack(spawn, tmp_path, pg_dsn)
    token = mint_console_token(stack, "acme")
    with console_login(stack, token) as tenant:  # a real tenant login works, and makes the gateway set up its keys
        assert logged_in(tenant.get("/console/keys"))

    stored, keys = asyncio.run(_dump(pg_dsn))
    candidates = [old_key, *stored.values()]
    assert keys, "the dump holds the console token's id"
    before = _key_count(stack, "acme")
    for key in candidates:
        for key_id, tenant_id in keys:
            session = Session(role="tenant", tenant=tenant_id, key_id=key_id, expires=time.time() + 3600)
            with with_cookie(stack, forge(session, key)) as attacker:
                page = attacker.get("/console/keys")
                assert not logged_in(page), f"a session forged from the database opened the console ({key_id})"
                minted = attacker.post("/console/keys", data={"csrf": session.csrf, "name": "stolen"})
                assert minted.status_code in (303, 403), minted.status_code
    assert _key_count(stack, "acme") == before, "a forged session minted an API key"
    assert OLD_KEY_NAME not in stored, "the plain-form console key is still in the database after the upgrade"


def test_no_signing_key_is_stored_and_logins_work_on_every_replica(spawn: Spawn, tmp_path: Path, pg_dsn: str) -> None:
    stack = start_stack(spawn, tmp_path, pg_dsn)
    token = mint_console_token(stack, "acme")
    with console_login(stack, token) as tenant:
        cookie = tenant.cookies.get("mcp_console")
        csrf = csrf_of(tenant.get("/console/keys").text)
    # An MCP session too: its token (and sealed requestState) key is not in the database either.
    with stack.gateway.admin() as admin:
        key = admin.post("/admin/v1/tenants/acme/keys", json={"name": "mcp"}).json()["key"]
    asyncio.run(_open_mcp_session(stack.gateway.url("acme-tools"), key))
    stored, _ = asyncio.run(_dump(pg_dsn))
    assert stored == {}, f"signing keys stored in the database: {sorted(stored)}"
    assert cookie is not None and csrf
    # Another replica (same environment) accepts the login: the key is derived, not random per process.
    (tmp_path / "other").mkdir()
    other = start_stack(spawn, tmp_path / "other", pg_dsn)
    with with_cookie(other, cookie) as same_user:
        assert logged_in(same_user.get("/console/keys"))


def test_signing_keys_rotate_newest_first() -> None:
    old, new = b"o" * 32, b"n" * 32
    session = Session(role="tenant", tenant="acme", key_id="k", expires=time.time() + 60)
    issued_before = SessionCodec([old]).encode(session)
    rotated = SessionCodec([new, old])
    assert rotated.decode(issued_before) == session, "a cookie signed with the previous key still works"
    assert rotated.encode(session) == SessionCodec([new]).encode(session), "new cookies are signed with the newest key"
    assert SessionCodec([new]).decode(issued_before) is None, "a retired key signs nothing valid"
    assert rotated.fingerprint_matches("admin-token", SessionCodec([old]).fingerprint("admin-token"))


def test_adding_a_session_key_rotates_the_console_key_without_logging_anyone_out(
    spawn: Spawn, tmp_path: Path, pg_dsn: str
) -> None:
    stack = start_stack(spawn, tmp_path, pg_dsn)
    token = mint_console_token(stack, "acme")
    with console_login(stack, token) as before:
        old_cookie = before.cookies.get("mcp_console")
    assert old_cookie
    feature = start_feature(spawn)[1]
    config = write_config(tmp_path / "rotated.yaml", routing(feature, stack.hostile_url))
    env = {"MCP_GATEWAY_SESSION_KEYS": "rotated-session-key-0123456789abcdef"}
    rotated = Stack(start_gateway(spawn, config, dsn=pg_dsn, name="rotated", env=env), feature, stack.hostile_url)
    with with_cookie(rotated, old_cookie) as kept:
        assert logged_in(kept.get("/console/keys")), "a cookie signed before the rotation still works"
    with console_login(rotated, token) as after:
        new_cookie = after.cookies.get("mcp_console")
    assert new_cookie
    with with_cookie(stack, new_cookie) as unknown:
        assert not logged_in(unknown.get("/console/keys")), "new cookies are signed with the new key"
