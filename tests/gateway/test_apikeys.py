"""API keys through the admin API against a real PostgreSQL: tenant isolation, revocation,
expiry, hashed storage, and secrets kept out of listings and logs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from mcp_gateway.store.key_cache import KEY_CACHE_SECONDS
from mcp_gateway.store.migrate import migration_files

from tests.gateway.support import (
    GatewayProc,
    Spawn,
    mcp_client,
    open_session,
    profile,
    rpc,
    session_ping,
    start_gateway,
)

JSON_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture
def gateway(spawn: Spawn, feature: str, routing: Callable[[dict[str, Any]], Path], pg_dsn: str) -> GatewayProc:
    config = routing(
        {
            "tenants": [{"id": "acme"}, {"id": "globex"}],
            "profiles": [
                profile("acme-dev", "acme", [("feat", feature)]),
                profile("acme-prod", "acme", [("feat", feature)]),
                profile("globex-dev", "globex", [("feat", feature)]),
            ],
        }
    )
    return start_gateway(spawn, config, dsn=pg_dsn)


def list_status(gw: GatewayProc, pid: str, key: str | None) -> httpx.Response:
    headers = {**JSON_HEADERS, "MCP-Protocol-Version": "2025-11-25"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.post(gw.url(pid), json=rpc("tools/list"), headers=headers, timeout=10)


def create_key(gw: GatewayProc, tenant: str, **body: Any) -> dict[str, Any]:
    with gw.admin() as admin:
        response = admin.post(f"/admin/v1/tenants/{tenant}/keys", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_keys_open_only_their_tenants_profiles(gateway: GatewayProc, pg_dsn: str) -> None:
    acme = create_key(gateway, "acme", name="ci")
    globex = create_key(gateway, "globex")
    scoped = create_key(gateway, "acme", profiles=["acme-dev"])

    assert list_status(gateway, "acme-dev", acme["key"]).status_code == 200
    assert list_status(gateway, "acme-prod", acme["key"]).status_code == 200
    cross = list_status(gateway, "globex-dev", acme["key"])
    assert cross.status_code == 403
    assert "not allowed" in cross.json()["error"]["message"]
    assert list_status(gateway, "acme-dev", globex["key"]).status_code == 403
    assert list_status(gateway, "globex-dev", globex["key"]).status_code == 200
    assert list_status(gateway, "acme-dev", scoped["key"]).status_code == 200
    assert list_status(gateway, "acme-prod", scoped["key"]).status_code == 403

    # A real MCP client with the key works end to end; the upstream never sees the credential.
    async with mcp_client(gateway.url("acme-dev"), {"Authorization": f"Bearer {acme['key']}"}) as client:
        whoami = await client.call_tool("whoami", {})
        headers = (whoami.structured_content or {})["headers"]
        assert "authorization" not in headers and "x-api-key" not in headers

    # Stored as a keyed hash only: no column holds the secret.
    conn = await asyncpg.connect(pg_dsn)
    try:
        rows = await conn.fetch("SELECT * FROM api_keys")
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
    finally:
        await conn.close()
    assert versions == [version for version, _, _ in migration_files()]
    assert len(rows) == 3
    for row in rows:
        assert all(acme["key"] not in str(value) for value in row.values())
        assert row["key_hash"] != acme["key"] and len(row["key_hash"]) == 64

    # Listings show the prefix and metadata, never the secret or the hash.
    with gateway.admin() as admin:
        listed = admin.get("/admin/v1/tenants/acme/keys").json()
    assert {k["prefix"] for k in listed} == {acme["prefix"], scoped["prefix"]}
    assert all("key" not in k and "keyHash" not in k for k in listed)
    assert acme["key"] not in gateway.process.log_text()


async def test_missing_bad_revoked_and_expired_keys(gateway: GatewayProc) -> None:
    missing = list_status(gateway, "acme-dev", None)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    bad = list_status(gateway, "acme-dev", "mcpk_000000000000_nope")
    assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["www-authenticate"]
    garbage = list_status(gateway, "acme-dev", "not-a-key")
    assert garbage.status_code == 401

    key = create_key(gateway, "acme")
    assert list_status(gateway, "acme-dev", key["key"]).status_code == 200
    # A key with the right prefix but wrong secret fails too.
    forged = key["key"][: len("mcpk_") + 12] + "_wrongsecret"
    assert list_status(gateway, "acme-dev", forged).status_code == 401
    with gateway.admin() as admin:
        revoked = admin.delete(f"/admin/v1/keys/{key['id']}")
        assert revoked.status_code == 200 and revoked.json()["revokedAt"]
        assert admin.delete("/admin/v1/keys/00000000-0000-0000-0000-000000000000").status_code == 404
    after = list_status(gateway, "acme-dev", key["key"])
    assert after.status_code == 401 and "revoked" in after.json()["error"]["message"]

    # Expiry: a margin wide enough for a loaded machine before it, then a wait past the
    # expiresAt the gateway itself reported (not a guess), with the key cached meanwhile.
    short = create_key(gateway, "acme", expiresInSeconds=5)
    expires_at = datetime.fromisoformat(short["expiresAt"])
    assert list_status(gateway, "acme-dev", short["key"]).status_code == 200
    assert datetime.now(UTC) < expires_at, "the machine was too slow to see the key before it expired"
    await asyncio.sleep((expires_at - datetime.now(UTC)).total_seconds() + 0.2)
    expired = list_status(gateway, "acme-dev", short["key"])
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]


async def test_a_session_replayed_under_another_key_is_not_found(gateway: GatewayProc) -> None:
    """A session id is bound to the caller that opened it: another valid key of the same tenant,
    on the same profile, cannot ride on it (it would inherit the first caller's upstream session)."""
    owner = {"Authorization": f"Bearer {create_key(gateway, 'acme', name='owner')['key']}"}
    other = {"Authorization": f"Bearer {create_key(gateway, 'acme', name='other')['key']}"}
    session = open_session(gateway.url("acme-dev"), owner)
    assert session_ping(gateway.url("acme-dev"), session, owner).status_code == 200
    replay = session_ping(gateway.url("acme-dev"), session, other)
    assert replay.status_code == 404
    assert "session not found" in replay.json()["error"]["message"]
    # The owner's session is unaffected by the failed replay.
    assert session_ping(gateway.url("acme-dev"), session, owner).status_code == 200


async def test_a_revoked_key_stops_working_on_every_replica(
    spawn: Spawn, feature: str, routing: Callable[[dict[str, Any]], Path], pg_dsn: str
) -> None:
    config = routing({"tenants": [{"id": "acme"}], "profiles": [profile("acme-dev", "acme", [("feat", feature)])]})
    first = start_gateway(spawn, config, dsn=pg_dsn, name="gw-a")
    second = start_gateway(spawn, config, dsn=pg_dsn, name="gw-b")
    key = create_key(first, "acme")
    assert list_status(second, "acme-dev", key["key"]).status_code == 200  # now in the second's key cache
    with first.admin() as admin:
        assert admin.delete(f"/admin/v1/keys/{key['id']}").status_code == 200
    # The revocation reaches the other replica's cache by NOTIFY, well before the cache would expire it.
    deadline = asyncio.get_running_loop().time() + KEY_CACHE_SECONDS / 3
    while (after := list_status(second, "acme-dev", key["key"])).status_code == 200:
        assert asyncio.get_running_loop().time() < deadline, "the second replica still accepts a revoked key"
        await asyncio.sleep(0.05)
    assert after.status_code == 401 and "revoked" in after.json()["error"]["message"]


async def test_admin_api_requires_token(gateway: GatewayProc) -> None:
    assert httpx.get(f"{gateway.base}/admin/v1/tenants").status_code == 401
    wrong = httpx.get(f"{gateway.base}/admin/v1/tenants", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    with gateway.admin() as admin:
        tenants = admin.get("/admin/v1/tenants").json()
        assert {t["id"]: t["profiles"] for t in tenants} == {
            "acme": ["acme-dev", "acme-prod"],
            "globex": ["globex-dev"],
        }
        assert admin.get("/admin/v1/profiles/acme-dev").json()["tenant"] == "acme"
        assert admin.get("/admin/v1/profiles/nope").status_code == 404
        foreign = admin.post("/admin/v1/tenants/acme/keys", json={"profiles": ["globex-dev"]})
        assert foreign.status_code == 422
