"""Policy rules and call limits on the real provider's tokens, with the audit log and the limit
counters in a real PostgreSQL: the realm's groups decide what each person lists and may call or
read (both protocol eras), a refusal names the rule and is audited with the person's identity,
a call limit counts per person, refusing with Retry-After and the limit's name, and a rule that
reads a claim as the wrong type refuses clearly (fail closed) instead of failing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.conftest import _in_thread
from tests.gateway.support import (
    MODERN,
    GatewayProc,
    Spawn,
    mcp_client,
    modern_call,
    modern_headers,
    profile,
    start_gateway,
    write_config,
)
from tests.support import postgres
from tests.support.keycloak import TEST_TIMEOUT_SECONDS, Keycloak

# The first test may wait for the provider's start-up.
pytestmark = [pytest.mark.late_tools, pytest.mark.timeout(TEST_TIMEOUT_SECONDS)]

FORBIDDEN = -32003
RATE_LIMITED = -32029
RULES = [
    {"name": "admins-add", "effect": "deny", "kinds": ["tool"],
     "when": 'name == "add" && !("admins" in claims.groups)'},
    {"name": "admins-binary", "effect": "deny", "kinds": ["resource"],
     "when": 'name.endsWith("binary") && !("admins" in claims.groups)'},
]  # fmt: skip
# Written as if `groups` were one string: the provider's tokens carry a list.
TYPED_RULES = [{"name": "admins-by-prefix", "effect": "deny", "when": '!claims.groups.startsWith("admin")'}]
LIMITS = [{"name": "echo-per-person", "tools": ["echo"], "rate": {"calls": 2, "per": "minute"}}]


@pytest.fixture(scope="module")
def gateway(
    spawn_module: Spawn, feature_url: str, keycloak: Keycloak, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProc]:
    name, dsn = _in_thread(postgres.create_database)
    oidc = keycloak.oidc_settings(requiredScopes=["mcp:tools"], identityClaims={"subject": "preferred_username"})
    ruled = profile(
        "ruled",
        "acme",
        [("feat", feature_url)],
        auth={"mode": "oidc", "oidc": oidc},
        policy={"rules": RULES},
        limits={"callLimits": LIMITS},
    )
    # The audit's email read from a claim that is a list: left out, not a failure.
    typed_oidc = oidc | {"identityClaims": {"subject": "preferred_username", "email": "groups"}}
    typed = profile(
        "typed",
        "acme",
        [("feat", feature_url)],
        auth={"mode": "oidc", "oidc": typed_oidc},
        policy={"rules": TYPED_RULES},
    )
    config = write_config(
        Path(tmp_path_factory.mktemp("provider-policy")) / "routing.yaml",
        {"gateway": {"allowPrivateJwks": True}, "tenants": [{"id": "acme"}], "profiles": [ruled, typed]},
    )
    gw = start_gateway(spawn_module, config, dsn=dsn, name="gw-provider-policy")
    yield gw
    gw.process.stop()
    _in_thread(lambda: postgres.drop_database(name))


def bearer(keycloak: Keycloak, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {keycloak.access_token(user)}"}


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_the_realm_s_groups_decide_what_each_person_sees_and_may_use(
    gateway: GatewayProc, keycloak: Keycloak, mode: str
) -> None:
    async with mcp_client(gateway.url("ruled"), bearer(keycloak, "alice"), mode=mode) as client:  # admins, dev
        assert "add" in {t.name for t in (await client.list_tools()).tools}
        assert (await client.call_tool("add", {"a": 2, "b": 3})).structured_content == {"a": 2, "b": 3, "sum": 5}
        assert (await client.read_resource("test://static-binary")).contents
    async with mcp_client(gateway.url("ruled"), bearer(keycloak, "bob"), mode=mode) as client:  # dev only
        assert "add" not in {t.name for t in (await client.list_tools()).tools}
        assert "test://static-binary" not in {str(r.uri) for r in (await client.list_resources()).resources}
        with pytest.raises(MCPError) as tool:
            await client.call_tool("add", {"a": 1, "b": 2})  # guessing the hidden name does not help
        assert tool.value.error.code == FORBIDDEN and tool.value.error.data == {"rule": "admins-add", "reason": "deny"}
        assert "claims.groups" not in tool.value.error.message  # named, never told
        with pytest.raises(MCPError) as resource:
            await client.read_resource("test://static-binary")
        assert resource.value.error.data == {"rule": "admins-binary", "reason": "deny"}


async def test_refusals_are_audited_in_postgresql_with_the_person_s_identity(
    gateway: GatewayProc, keycloak: Keycloak
) -> None:
    async with mcp_client(gateway.url("ruled"), bearer(keycloak, "bob")) as client:
        with pytest.raises(MCPError):
            await client.call_tool("add", {"a": 1, "b": 2})
        with pytest.raises(MCPError):
            await client.read_resource("test://static-binary")
    for _ in range(100):  # the writer flushes in the background
        with gateway.admin() as admin:
            items = admin.get("/admin/v1/audit", params={"profile": "ruled"}).json()["items"]
        refused = [i for i in items if i["outcome"] == "policy_refused"]
        if len(refused) >= 2:
            break
        await asyncio.sleep(0.2)
    newest = {i["kind"]: i for i in reversed(refused)}  # the newest record of each kind wins
    assert (newest["tool"]["tool"], newest["tool"]["rule"]) == ("add", "admins-add")
    assert (newest["resource"]["tool"], newest["resource"]["rule"]) == ("test://static-binary", "admins-binary")
    for record in newest.values():
        assert record["identity"] == {"sub": "bob", "groups": ["dev"], "email": "bob@example.com"}
        assert record["caller"] == f"sub:{keycloak.user_id('bob')}"


def echo(gateway: GatewayProc, token: str) -> httpx.Response:
    headers = {**modern_headers("tools/call", "echo"), "Authorization": f"Bearer {token}"}
    return httpx.post(gateway.url("ruled"), json=modern_call("echo", {"text": "x"}), headers=headers, timeout=30)


def test_a_call_limit_counts_per_person(gateway: GatewayProc, keycloak: Keycloak) -> None:
    alice, bob = keycloak.access_token("alice"), keycloak.access_token("bob")
    assert all("result" in echo(gateway, alice).json() for _ in range(2))
    over = echo(gateway, alice)
    assert over.status_code == 429 and 1 <= int(over.headers["retry-after"]) <= 60
    error = over.json()["error"]
    assert error["code"] == RATE_LIMITED and error["data"]["name"] == "echo-per-person"
    # A fresh token of the same person is the same subject: still limited; bob has his own two.
    assert echo(gateway, keycloak.access_token("alice")).status_code == 429
    assert "result" in echo(gateway, bob).json()


async def test_a_rule_reading_a_claim_as_the_wrong_type_refuses_clearly(
    gateway: GatewayProc, keycloak: Keycloak
) -> None:
    async with mcp_client(gateway.url("typed"), bearer(keycloak, "alice")) as client:
        assert (await client.list_tools()).tools == []  # a deny rule that cannot be evaluated hides
        with pytest.raises(MCPError) as refused:
            await client.call_tool("echo", {"text": "hi"})
    error = refused.value.error
    assert error.code == FORBIDDEN and error.data == {"rule": "admins-by-prefix", "reason": "error"}
    assert "could not be evaluated for this caller" in error.message and "Traceback" not in error.message
    for _ in range(100):
        with gateway.admin() as admin:
            items = admin.get("/admin/v1/audit", params={"profile": "typed"}).json()["items"]
        if items:
            break
        await asyncio.sleep(0.2)
    assert items[0]["identity"] == {"sub": "alice", "groups": ["admins", "dev"]}  # no email from a list
