"""Quota usage is looked up by exact scope, so tenants whose ids share a prefix (`a`, `a-labs`)
never see each other's counters: in the store (memory and PostgreSQL), in the admin API's
usage route and in the console's quota table."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from mcp_gateway.store.base import Counter, Store
from mcp_gateway.store.memory import MemoryStore
from mcp_gateway.store.postgres import PostgresStore

from tests.gateway.support import ADMIN_TOKEN, Spawn, start_gateway, write_config

DAY = "d:2026-11-25"


@pytest.fixture(params=["memory", "postgres"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    chosen: Store = MemoryStore() if request.param == "memory" else PostgresStore(request.getfixturevalue("pg_dsn"))
    await chosen.start()
    yield chosen
    await chosen.close()


async def _count(store: Store, *scopes: str) -> None:
    assert await store.admit([], [Counter(s, DAY, 100) for s in scopes], sync_commit=True) is None


async def test_a_tenants_usage_is_its_own_scope_only(store: Store) -> None:
    await _count(store, "tenant:a", "caller:a:p:k1")
    await _count(store, "tenant:a-labs", "caller:a-labs:p:k2")
    await _count(store, "tenant:ab", "caller:ab:p:k3")
    await _count(store, "tenant:a-labs")
    assert await store.usage("tenant:a") == [("tenant:a", DAY, 1)]
    assert await store.usage("tenant:a-labs") == [("tenant:a-labs", DAY, 2)]
    assert await store.usage("tenant:") == []  # not a scope of its own: no prefix semantics by default
    # Nested lookups take a separator-terminated prefix: `caller:a:` is not a prefix of `caller:a-labs:`.
    assert await store.usage("caller:a:", nested=True) == [("caller:a:p:k1", DAY, 1)]
    assert await store.usage("caller:a:p:", nested=True) == [("caller:a:p:k1", DAY, 1)]
    with pytest.raises(ValueError, match="separator"):
        await store.usage("caller:a", nested=True)


def _routing() -> dict[str, object]:
    quota = {"quota": {"daily": 1000, "monthly": 20000}}
    return {
        "tenants": [{"id": "a", "limits": quota}, {"id": "a-labs", "limits": quota}],
        "profiles": [
            {"id": "a-main", "tenant": "a", "upstreams": [{"name": "f", "url": "http://127.0.0.1:9/mcp"}]},
            {"id": "labs-main", "tenant": "a-labs", "upstreams": [{"name": "f", "url": "http://127.0.0.1:9/mcp"}]},
        ],
    }


@pytest.mark.parametrize("backend", ["memory", "postgres"])
def test_admin_and_console_usage_do_not_mix_prefix_related_tenants(
    backend: str, spawn: Spawn, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from tests.console.support import csrf_of  # console helpers; no browser needed here

    dsn = request.getfixturevalue("pg_dsn") if backend == "postgres" else None
    gateway = start_gateway(spawn, write_config(tmp_path / "routing.yaml", _routing()), dsn=dsn)
    with gateway.admin() as admin:
        labs_key = admin.post("/admin/v1/tenants/a-labs/keys", json={"name": "labs"}).json()["key"]
        a_key = admin.post("/admin/v1/tenants/a/keys", json={"name": "a"}).json()["key"]
        # Calls that pass authentication and admission, then fail upstream (nothing listens): still counted.
        for key, profile in ((labs_key, "labs-main"), (a_key, "a-main")):
            headers = {"Authorization": f"Bearer {key}", "Accept": "application/json, text/event-stream"}
            body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "x", "arguments": {}}}
            httpx.post(gateway.url(profile), json=body, headers=headers, timeout=20)
        labs = admin.get("/admin/v1/tenants/a-labs/usage").json()["counters"]
        assert labs and all(":a-labs" in c["scope"] for c in labs), labs
        mine = admin.get("/admin/v1/tenants/a/usage").json()["counters"]
        assert mine, "tenant a's own call is counted"
        assert all("a-labs" not in c["scope"] for c in mine), f"another tenant's usage leaked: {mine}"

        with httpx.Client(base_url=gateway.base, timeout=20) as operator:
            csrf = csrf_of(operator.get("/console/login").text)
            operator.post("/console/login", data={"token": ADMIN_TOKEN, "csrf": csrf})
            page = operator.get("/console/profiles/a-main")
        assert page.status_code == 200
        table = page.text.split('id="quota-usage"', 1)[1].split("</table>", 1)[0]
        assert "<code>tenant:a</code>" in table
        assert "a-labs" not in table, f"the quota table of a-main shows tenant a-labs' counters: {table}"
