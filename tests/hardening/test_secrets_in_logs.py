"""A full stack - gateway with API keys and OIDC on PostgreSQL (DSN with a password), adapter
with env secrets for a stdio server and a bearer token for an OpenAPI service - runs calls and
errors; then every captured log of those processes is searched for every secret configured."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from tests.adapter.support import PYTHON, ROOT, feature_stdio, start_adapter
from tests.gateway.support import ADMIN_TOKEN, PEPPER, Spawn, mcp_client, profile, rpc, start_gateway, write_config
from tests.support.jwks import Issuer, oidc_settings
from tests.support.processes import ManagedProcess, free_port

ITEMS_API = str(ROOT / "tests" / "adapter" / "servers" / "items_api.py")


async def dedicated_role(dsn: str) -> tuple[str, str, Callable[[], Any]]:
    """A login role with a random password owning nothing but access to the test database."""
    role, password = f"hard_{secrets.token_hex(4)}", f"pw-{secrets.token_hex(12)}"
    database = urlsplit(dsn).path.lstrip("/")
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        await connection.execute(f'GRANT ALL ON DATABASE "{database}" TO {role}; GRANT ALL ON SCHEMA public TO {role}')
    finally:
        await connection.close()
    parts = urlsplit(dsn)
    role_dsn = urlunsplit(parts._replace(netloc=f"{role}:{password}@{parts.hostname}:{parts.port or 5432}"))

    async def drop() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f"DROP OWNED BY {role} CASCADE; DROP ROLE IF EXISTS {role}")
        finally:
            await conn.close()

    return role_dsn, password, drop


async def test_no_secret_reaches_any_log(spawn: Spawn, tmp_path: Path, pg_dsn: str) -> None:
    items_token = f"items-{secrets.token_hex(16)}"
    stdio_secret = f"stdio-{secrets.token_hex(16)}"
    role_dsn, db_password, drop_role = await dedicated_role(pg_dsn)
    issuer = Issuer()
    issuer.add_key("k1")
    processes: list[ManagedProcess] = []
    try:
        port = free_port()
        processes.append(
            spawn(
                [PYTHON, ITEMS_API, "--port", str(port)],
                name="secrets-items",
                env={"ITEMS_TOKEN": items_token},
                ready_url=f"http://127.0.0.1:{port}/openapi.json",
            )
        )
        sources = [
            feature_stdio("feat", env={"FEATURE_TOKEN": {"fromEnv": "HARD_STDIO_SECRET"}}),
            {
                "name": "items",
                "type": "openapi",
                "spec": f"http://127.0.0.1:{port}/openapi.json",
                "allowPrivateNetwork": True,
                "auth": {"type": "bearer", "token": {"fromEnv": "HARD_ITEMS_TOKEN"}},
                "prefixPolicy": "always",
            },
        ]
        adapter = start_adapter(
            spawn, tmp_path, sources, env={"HARD_STDIO_SECRET": stdio_secret, "HARD_ITEMS_TOKEN": items_token}
        )
        processes.append(adapter.process)
        oidc = oidc_settings(issuer.url)
        config = tmp_path / "routing.yaml"
        write_config(
            config,
            {
                "gateway": {"allowPrivateJwks": True},  # the test's issuer is on loopback
                "tenants": [{"id": "acme"}],
                "profiles": [
                    profile("keys", "acme", [("adapter", adapter.mcp_url)]),
                    profile("sso", "acme", [("adapter", adapter.mcp_url)], auth={"mode": "oidc", "oidc": oidc}),
                ],
            },
        )
        gateway = start_gateway(spawn, config, dsn=role_dsn, name="secrets-gateway")
        processes.append(gateway.process)

        with gateway.admin() as admin:
            created = admin.post("/admin/v1/tenants/acme/keys", json={"name": "ci"}).json()
        api_key = created["key"]
        jwt_token = issuer.token("k1")
        async with mcp_client(gateway.url("keys"), {"Authorization": f"Bearer {api_key}"}) as client:
            echoed = await client.call_tool("echo", {"text": "hello"})
            assert echoed.content[0].text == "hello"  # type: ignore[union-attr]
            seen = await client.call_tool("get_env", {"name": "FEATURE_TOKEN"})
            assert seen.content[0].text == stdio_secret  # the child got it; the logs must not
            assert not (await client.call_tool("items__getItem", {"item_id": 1})).is_error
            assert (await client.call_tool("items__getItem", {"item_id": 999})).is_error
            assert (await client.call_tool("fail", {"message": "boom"})).is_error
        async with mcp_client(gateway.url("sso"), {"Authorization": f"Bearer {jwt_token}"}) as client:
            assert not (await client.call_tool("echo", {"text": "sso"})).is_error
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        bad_key = api_key[:-4] + "xxxx"
        for pid, token in (("keys", bad_key), ("sso", jwt_token + "x"), ("sso", issuer.token("k1", aud="x"))):
            refused = httpx.post(
                gateway.url(pid), json=rpc("tools/list"), headers={**headers, "Authorization": f"Bearer {token}"}
            )
            assert refused.status_code == 401
        assert (
            httpx.get(
                f"{gateway.base}/admin/v1/tenants", headers={"Authorization": f"Bearer {ADMIN_TOKEN}x"}
            ).status_code
            == 401
        )
        time.sleep(1)  # audit flush
    finally:
        for process in processes:
            process.stop()  # graceful: everything they had to say is in their logs now
        issuer.server.shutdown()
        await drop_role()

    logs = {p.name: p.log_path.read_text(errors="replace") for p in processes}
    assert logs["adapter"] and logs["secrets-gateway"], "the adapter and the gateway logged nothing"
    configured = {
        "admin token": ADMIN_TOKEN,
        "key pepper": PEPPER,
        "API key": api_key,
        "API key secret part": api_key.rsplit("_", 1)[-1],
        "JWT": jwt_token,
        "JWT signature": jwt_token.rsplit(".", 1)[-1],
        "OpenAPI bearer token": items_token,
        "stdio env secret": stdio_secret,
        "database password": db_password,
    }
    leaks = [f"{what} in {name}" for what, value in configured.items() for name, text in logs.items() if value in text]
    assert not leaks, leaks
