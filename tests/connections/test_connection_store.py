"""Connection storage on the real PostgreSQL: sealed refresh tokens, key rotation, settings errors."""

from __future__ import annotations

import time
from pathlib import Path

import asyncpg
import pytest
from mcp_gateway.config import parse_config
from mcp_gateway.connections import oauth
from mcp_gateway.connections.crypto import KeyRing, KeyRingError, Unreadable
from mcp_gateway.connections.service import Connections, NotConnected, _Cached
from mcp_gateway.connections.settings import OAuthConnection, SecretKeyRef
from mcp_gateway.connections.store import ConnectionKey, MemoryConnections, PostgresConnections
from mcp_gateway.store.migrate import migrate

from tests.connections.conftest import KEY_1, KEY_2

ALICE = ConnectionKey("acme", "sub:alice", "crm", "crm")
BOB = ConnectionKey("acme", "sub:bob", "crm", "crm")
SETTINGS = OAuthConnection(issuer="http://127.0.0.1:9/realms/x", client_id="app")


async def _gateway_connections(pool: asyncpg.Pool, keys: str) -> Connections:
    return Connections({"MCP_GATEWAY_CONNECTION_KEYS": keys}, PostgresConnections(pool))


async def test_rotation_keeps_old_rows_readable_and_writes_new_ones_with_the_new_key(pg_dsn: str) -> None:
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        old = await _gateway_connections(pool, KEY_1)
        await old._write(ALICE, "alice-refresh", "profile")
        row = await old.store.get(ALICE)
        assert row is not None and row.key_id == "k1" and b"alice-refresh" not in row.sealed_refresh

        rotated = await _gateway_connections(pool, f"{KEY_2},{KEY_1}")
        assert rotated.keys().open(row.key_id, row.sealed_refresh, ALICE.aad()) == b"alice-refresh"
        await rotated._write(BOB, "bob-refresh", "")
        assert [(r.key.caller, r.key_id) for r in await rotated.store.of_caller("acme", "sub:bob")] == [
            ("sub:bob", "k2")
        ]
        # A sealed token opens only for its own row: copying Alice's ciphertext to Bob's row fails.
        with pytest.raises(Unreadable):
            rotated.keys().open(row.key_id, row.sealed_refresh, BOB.aad())

        # k1 removed: Alice's row can no longer be opened; she is asked to connect again (the row stays).
        without_old = await _gateway_connections(pool, KEY_2)
        with pytest.raises(NotConnected, match="can no longer be read"):
            await without_old.access_token(ALICE, SETTINGS)
        # Revoking deletes the row even when the provider is unreachable.
        assert await without_old.revoke(ALICE, SETTINGS) is True
        assert await without_old.store.get(ALICE) is None
        for connections in (old, rotated, without_old):
            await connections.close()
    finally:
        await pool.close()


async def test_memory_store_and_sealed_links() -> None:
    connections = Connections({"MCP_GATEWAY_CONNECTION_KEYS": KEY_1}, MemoryConnections())
    with pytest.raises(NotConnected, match="not connected"):
        await connections.access_token(ALICE, SETTINGS)
    link = connections.link(ALICE, 60)
    assert connections.open_link(link) == ALICE
    with pytest.raises(Unreadable):
        connections.open_link(link[:-3] + ("xyz" if not link.endswith("xyz") else "abc"))
    expired = connections.link(ALICE, -1)
    with pytest.raises(Unreadable, match="expired"):
        connections.open_link(expired)
    await connections.close()


async def test_a_connection_deleted_on_one_replica_leaves_the_others_caches() -> None:
    published: list[dict[str, object]] = []

    async def publish(payload: dict[str, object]) -> None:
        published.append(payload)

    here = Connections({"MCP_GATEWAY_CONNECTION_KEYS": KEY_1}, MemoryConnections())
    there = Connections({"MCP_GATEWAY_CONNECTION_KEYS": KEY_1}, here.store)
    here.publish = publish
    await here._write(ALICE, "alice-refresh", "")
    there._tokens[ALICE] = _Cached("alice-access", time.monotonic() + 300)
    assert await there.access_token(ALICE, SETTINGS) == "alice-access"
    assert await here.revoke(ALICE, SETTINGS)
    there.forget(published[0])  # as runtime.py relays the replica message
    with pytest.raises(NotConnected):
        await there.access_token(ALICE, SETTINGS)
    for connections in (here, there):
        await connections.close()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("k1", "kid:base64key"),
        ("k1:not-base64!", "not base64"),
        ("k1:" + "QUFB", "32 bytes"),
        (f"{KEY_1},{KEY_1}", "listed twice"),
    ],
)
def test_bad_key_rings_are_refused_with_a_clear_message(value: str, message: str) -> None:
    with pytest.raises(KeyRingError, match=message):
        KeyRing.parse(value)


def test_a_connection_needs_endpoints_and_an_oidc_profile() -> None:
    upstream = {"name": "crm", "url": "http://127.0.0.1:1/mcp", "connection": {"clientId": "app"}}
    with pytest.raises(ValueError, match="issuer \\(discovery\\) or both"):
        parse_config(_config(upstream, {"mode": "oidc", "oidc": _oidc()}))
    upstream["connection"] = {"clientId": "app", "issuer": "http://127.0.0.1:1/realms/x"}
    with pytest.raises(ValueError, match="need OIDC sign-in"):
        parse_config(_config(upstream, {"mode": "apiKey"}))
    assert parse_config(_config(upstream, {"mode": "oidc", "oidc": _oidc()})).profiles[0].upstreams[0].connection


def _oidc() -> dict[str, str]:
    return {"issuer": "http://127.0.0.1:1/realms/x", "audience": "gw", "jwksUrl": "http://127.0.0.1:1/certs"}


def _config(upstream: dict[str, object], auth: dict[str, object]) -> str:
    import json

    profile = {"id": "crm", "tenant": "acme", "upstreams": [upstream], "auth": auth}
    return json.dumps({"tenants": [{"id": "acme"}], "profiles": [profile]})


def test_the_worked_example_is_a_valid_routing_config() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "routing-connections.yaml"
    config = parse_config(example.read_text())
    connection = config.profiles[0].upstreams[0].connection
    assert connection is not None and connection.display_name == "CRM"
    assert config.gateway.connections.user_sign_in is not None


def test_connections_name_their_client_secret_like_token_exchange_and_read_the_old_name_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    base = {"clientId": "app", "issuer": "http://127.0.0.1:1/realms/x"}
    for field, value in (
        ("clientSecretFile", "/run/secrets/crm"),
        ("clientSecretEnv", "CRM_SECRET"),
        ("clientSecretRef", {"namespace": "acme-tools", "name": "crm", "key": "secret"}),
    ):
        upstream = {"name": "crm", "url": "http://127.0.0.1:1/mcp", "connection": {**base, field: value}}
        connection = (
            parse_config(_config(upstream, {"mode": "oidc", "oidc": _oidc()})).profiles[0].upstreams[0].connection
        )
        assert connection is not None and connection.secret_sources() != []
    both = {**base, "clientSecretEnv": "A", "clientSecretFile": "/b"}
    upstream = {"name": "crm", "url": "http://127.0.0.1:1/mcp", "connection": both}
    with pytest.raises(ValueError, match="at most one of clientSecretFile, clientSecretEnv and clientSecretRef"):
        parse_config(_config(upstream, {"mode": "oidc", "oidc": _oidc()}))
    # clientSecretFromEnv was in the README and the worked example before the rename.
    upstream["connection"] = {**base, "clientSecretFromEnv": "CRM_SECRET"}
    with caplog.at_level("WARNING", logger="mcp_gateway.connections"):
        connection = (
            parse_config(_config(upstream, {"mode": "oidc", "oidc": _oidc()})).profiles[0].upstreams[0].connection
        )
    assert connection is not None and connection.client_secret_env == "CRM_SECRET"
    assert "clientSecretFromEnv is deprecated, use clientSecretEnv" in caplog.text
    upstream["connection"] = {**base, "clientSecretFromEnv": "A", "clientSecretEnv": "B"}
    with pytest.raises(ValueError, match="deprecated name of clientSecretEnv"):
        parse_config(_config(upstream, {"mode": "oidc", "oidc": _oidc()}))


async def test_a_connection_client_secret_is_read_at_use_and_a_missing_one_is_named() -> None:
    connections = Connections({"MCP_GATEWAY_CONNECTION_KEYS": KEY_1}, MemoryConnections())
    public = OAuthConnection(issuer="http://127.0.0.1:9/realms/x", client_id="app")
    assert (await connections.client(public)).secret is None
    from_env = OAuthConnection(issuer="http://127.0.0.1:9/realms/x", client_id="app", client_secret_env="S6_18_UNSET")
    with pytest.raises(oauth.ClientSecretMissing, match="S6_18_UNSET"):
        await connections.client(from_env)
    ref = SecretKeyRef(namespace="acme-tools", name="crm", key="secret")
    in_kube = OAuthConnection(issuer="http://127.0.0.1:9/realms/x", client_id="app", client_secret_ref=ref)
    with pytest.raises(oauth.ClientSecretMissing, match="needs the gateway to run in Kubernetes"):
        await connections.client(in_kube)
    await connections.close()
