"""Tenant isolation with prefix-related tenant ids (`acme`, `acme-labs`), on both stores: every
console page, every admin route and every MCP method, checked for the other tenant's data.

The route tables live in isolation.py; `test_every_console_and_admin_route_is_covered` fails
when the app gains a console or admin route that has no row there, so new routes join the suite.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mcp_gateway.front import METRIC_METHODS

from tests.conftest import _in_thread
from tests.gateway.support import Spawn, start_feature, start_gateway, write_config
from tests.hardening.isolation import (
    ADMIN_CHECKS,
    CONSOLE_CHECKS,
    MCP_METHODS,
    World,
    console_and_admin_routes,
    mcp_post,
    open_session,
    provision,
    refused,
    routing,
)
from tests.support import postgres

TENANTS = ["acme", "acme-labs"]


@pytest.fixture(scope="module", params=["memory", "postgres"])
def world(
    request: pytest.FixtureRequest, spawn_module: Spawn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    database = _in_thread(postgres.create_database) if request.param == "postgres" else None
    _, feature = start_feature(spawn_module, name=f"feature-{request.param}")
    config = write_config(tmp_path_factory.mktemp("isolation") / "routing.yaml", routing(feature))
    gateway = start_gateway(spawn_module, config, dsn=database[1] if database else None, name=f"gw-{request.param}")
    built = provision(gateway)
    yield built
    for tenant in built.tenants.values():
        tenant.console.close()
    if database:
        gateway.process.stop()
        _in_thread(lambda: postgres.drop_database(database[0]))


def test_every_console_and_admin_route_is_covered() -> None:
    declared = console_and_admin_routes()
    covered = set(CONSOLE_CHECKS) | set(ADMIN_CHECKS)
    missing = declared - covered
    assert not missing, f"routes without a tenant-isolation check in tests/hardening/isolation.py: {sorted(missing)}"
    assert not covered - declared, f"checks for routes the app no longer has: {sorted(covered - declared)}"


def test_every_mcp_method_the_gateway_knows_is_covered() -> None:
    missing = METRIC_METHODS - set(MCP_METHODS)
    assert not missing, f"MCP methods without a tenant-isolation check in tests/hardening/isolation.py: {missing}"


@pytest.mark.parametrize("me", TENANTS)
@pytest.mark.parametrize("route", sorted(CONSOLE_CHECKS), ids=lambda r: f"{r[0]} {r[1]}")
def test_console_page_shows_only_the_viewers_tenant(world: World, route: tuple[str, str], me: str) -> None:
    mine, other = world.pair(me)
    CONSOLE_CHECKS[route](world, mine, other)


@pytest.mark.parametrize("me", TENANTS)
@pytest.mark.parametrize("route", sorted(ADMIN_CHECKS), ids=lambda r: f"{r[0]} {r[1]}")
def test_admin_route_answers_for_one_tenant_only(world: World, route: tuple[str, str], me: str) -> None:
    mine, other = world.pair(me)
    ADMIN_CHECKS[route](world, mine, other)


@pytest.mark.parametrize("me", TENANTS)
@pytest.mark.parametrize("method", sorted(MCP_METHODS))
def test_mcp_method_refuses_the_other_tenants_key_and_session(world: World, method: str, me: str) -> None:
    mine, other = world.pair(me)
    my_url, their_url = world.gateway.url(mine.profile), world.gateway.url(other.profile)
    # My key on the other tenant's profile: refused, nothing of theirs in the answer.
    assert refused(mcp_post(their_url, mine.api_key, method)), method
    # My session on the other tenant's profile, with their key or mine: refused.
    mine_session = open_session(world, mine)
    assert refused(mcp_post(their_url, other.api_key, method, mine_session)), method
    assert refused(mcp_post(their_url, mine.api_key, method, mine_session)), method
    # Their key on my profile with my session (a stolen session id): refused.
    assert refused(mcp_post(my_url, other.api_key, method, mine_session)), method
    # The control: my key and session on my profile get past authentication.
    if method != "subscriptions/listen":  # a long-lived stream; its refusals above are what matters here
        own = mcp_post(my_url, mine.api_key, method, None if method == "initialize" else mine_session)
        assert own.status_code not in (401, 403, 404), (method, own.status_code, own.text)


@pytest.mark.parametrize("me", TENANTS)
def test_a_session_cannot_be_ended_by_the_other_tenant(world: World, me: str) -> None:
    import httpx

    mine, other = world.pair(me)
    session = open_session(world, mine)
    for url in (world.gateway.url(mine.profile), world.gateway.url(other.profile)):
        ended = httpx.delete(url, headers={"Authorization": f"Bearer {other.api_key}", "Mcp-Session-Id": session})
        assert ended.status_code in (401, 403, 404), (url, ended.status_code)
    assert mcp_post(world.gateway.url(mine.profile), mine.api_key, "ping", session).status_code == 200
