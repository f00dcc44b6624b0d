"""API key labels read by policy rules (`key.labels.team`), and rule refusals in the metrics and the
audit log, with both stores (in memory and a real PostgreSQL): labels set at creation through the
admin API and the CLI, listed, checked (bad labels refused with a clear message), carried into the
audit record's identity; a refusal counted under the rule's name and audited naming the rule; the
admin search as a caller applies the rules; `resources/subscribe` is rate-limited like any request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.conftest import _in_thread
from tests.gateway.support import (
    ADMIN_HEADERS,
    ADMIN_TOKEN,
    LEGACY,
    MODERN,
    GatewayProc,
    Spawn,
    mcp_client,
    modern_call,
    modern_headers,
    open_session,
    profile,
    rpc,
    start_gateway,
    write_config,
)
from tests.support import postgres

FORBIDDEN = -32003
RATE_LIMITED = -32029
RULES = [
    {
        "name": "payments-cannot-add",
        "effect": "deny",
        "when": 'name == "add" && has(key.labels.team) && key.labels.team == "payments"',
        "kinds": ["tool"],
    },
]
# Resource and prompt refusals, audited like tool calls (profile `guarded`).
GUARDS = [
    {"name": "payments-no-binary", "effect": "deny", "kinds": ["resource"],
     "when": 'name.endsWith("binary") && has(key.labels.team) && key.labels.team == "payments"'},
    {"name": "search-prompts", "effect": "allow", "kinds": ["prompt"],
     "when": 'has(key.labels.team) && key.labels.team == "search"'},
]  # fmt: skip


@pytest.fixture(scope="module", params=["memory", "postgres"])
def gateway(
    request: pytest.FixtureRequest, spawn_module: Spawn, feature_module: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProc]:
    database = _in_thread(postgres.create_database) if request.param == "postgres" else None
    rate = {"rate": {"perSecond": 0.01, "burst": 3}}
    config = write_config(
        tmp_path_factory.mktemp("labels") / "routing.yaml",
        {
            "tenants": [{"id": "acme"}],
            "profiles": [
                profile("keyed", "acme", [("feat", feature_module)], policy={"rules": RULES}),
                profile("guarded", "acme", [("feat", feature_module)], policy={"rules": GUARDS}),
                profile("subs", "acme", [("feat", feature_module)], auth={"mode": "none"}, limits=rate),
            ],
        },
    )
    dsn = database[1] if database else None
    gw = start_gateway(spawn_module, config, dsn=dsn, name=f"gw-labels-{request.param}")
    yield gw
    if database:
        gw.process.stop()
        _in_thread(lambda: postgres.drop_database(database[0]))


def create_key(gw: GatewayProc, **body: Any) -> httpx.Response:
    with gw.admin() as admin:
        return admin.post("/admin/v1/tenants/acme/keys", json=body)


def call(gw: GatewayProc, key: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    headers = {**modern_headers("tools/call", tool), "Authorization": f"Bearer {key}"}
    answer: dict[str, Any] = httpx.post(gw.url("keyed"), json=modern_call(tool, arguments), headers=headers).json()
    return answer


def refusals(gw: GatewayProc) -> dict[str, float]:
    """mcp_gateway_policy_refusals_total series of the /metrics page: labels text -> value."""
    found = {}
    for line in httpx.get(f"{gw.base}/metrics", headers=ADMIN_HEADERS).text.splitlines():
        if line.startswith("mcp_gateway_policy_refusals_total{"):
            labels, value = line.removeprefix("mcp_gateway_policy_refusals_total").rsplit(" ", 1)
            found[labels] = float(value)
    return found


async def test_rules_read_key_labels_and_refusals_are_counted_and_audited(gateway: GatewayProc) -> None:
    payments = create_key(gateway, name="pay-bot", labels={"team": "payments", "env": "ci"})
    assert payments.status_code == 201, payments.text
    assert payments.json()["labels"] == {"env": "ci", "team": "payments"}
    search = create_key(gateway, name="search-bot", labels={"team": "search"}).json()
    plain = create_key(gateway, name="plain").json()
    with gateway.admin() as admin:
        listed = {k["name"]: k["labels"] for k in admin.get("/admin/v1/tenants/acme/keys").json()}
    assert listed["pay-bot"] == {"env": "ci", "team": "payments"} and listed["plain"] == {}

    async with mcp_client(gateway.url("keyed"), {"Authorization": f"Bearer {payments.json()['key']}"}) as client:
        assert "add" not in {t.name for t in (await client.list_tools()).tools}
    refused = call(gateway, payments.json()["key"], "add", {"a": 1, "b": 2})["error"]
    assert refused["code"] == FORBIDDEN and refused["data"] == {"rule": "payments-cannot-add", "reason": "deny"}
    assert 'payments"' not in refused["message"]  # the rule is named, its expression is not told
    for other in (search, plain):  # another team's label, or none (has() keeps the rule false)
        assert call(gateway, other["key"], "add", {"a": 1, "b": 2})["result"]["structuredContent"]["sum"] == 3

    series = '{kind="tool",profile="keyed",reason="deny",rule="payments-cannot-add",tenant="acme"}'
    assert refusals(gateway) == {series: 1.0}  # lists filter without counting; one refused call

    with gateway.admin() as admin:
        items = admin.get("/admin/v1/audit", params={"profile": "keyed"}).json()["items"]
    denied = [i for i in items if i["outcome"] == "policy_refused"]
    assert len(denied) == 1, items
    assert denied[0]["rule"] == "payments-cannot-add" and denied[0]["tool"] == "add"
    assert "'payments-cannot-add'" in denied[0]["error"]
    assert denied[0]["identity"]["keyLabels"] == {"env": "ci", "team": "payments"}
    assert denied[0]["caller"] == f"key:{payments.json()['id']}"
    ok = [i for i in items if i["outcome"] == "ok" and i["identity"]["keyName"] == "search-bot"]
    assert ok and ok[0]["identity"]["keyLabels"] == {"team": "search"} and ok[0]["rule"] is None


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_refused_resource_reads_and_prompt_gets_are_audited(gateway: GatewayProc, mode: str) -> None:
    """Like a refused tool call: outcome `policy_refused`, the rule, the real URI or prompt name, who."""
    payments = create_key(gateway, name=f"pay-{mode}", labels={"team": "payments"}).json()
    async with mcp_client(gateway.url("guarded"), {"Authorization": f"Bearer {payments['key']}"}, mode=mode) as client:
        assert (await client.read_resource("test://static-text")).contents  # not refused: not audited
        with pytest.raises(MCPError) as resource:
            await client.read_resource("test://static-binary")
        assert resource.value.error.data == {"rule": "payments-no-binary", "reason": "deny"}
        with pytest.raises(MCPError) as prompt:
            await client.get_prompt("test_prompt_with_arguments", {"arg1": "secret-ish", "arg2": "b"})
        assert prompt.value.error.data == {"rule": None, "reason": "no_allow"}

    with gateway.admin() as admin:
        items = admin.get("/admin/v1/audit", params={"profile": "guarded"}).json()["items"]
    mine = [i for i in items if i["caller"] == f"key:{payments['id']}"]
    assert [(i["kind"], i["tool"], i["outcome"], i["rule"]) for i in mine] == [
        ("prompt", "test_prompt_with_arguments", "policy_refused", None),
        ("resource", "test://static-binary", "policy_refused", "payments-no-binary"),
    ]
    assert all(i["identity"]["keyLabels"] == {"team": "payments"} for i in mine)
    assert "'payments-no-binary'" in mine[1]["error"] and "no allow rule" in mine[0]["error"]
    assert mine[0]["arguments"].startswith("hmac-sha256:")  # prompt arguments, as the profile audits arguments
    assert mine[1]["arguments"] is None  # a read has none
    with gateway.admin() as admin:  # the URI is what the `tool` filter matches
        found = admin.get("/admin/v1/audit", params={"tool": "test://static-binary"}).json()["items"]
    assert {i["kind"] for i in found} == {"resource"} and found
    series = refusals(gateway)
    assert series['{kind="resource",profile="guarded",reason="deny",rule="payments-no-binary",tenant="acme"}'] >= 1


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"te am": "x"}, "label name 'te am'"),
        ({"-team": "x"}, "starting and ending with a letter or digit"),
        ({"team": "x" * 129}, "at most 128 characters"),
        ({"team": "a\nb"}, "printable"),
        ({f"l{i}": "x" for i in range(17)}, "at most 16 labels"),
        ({"team": 5}, "valid string"),
    ],
)
def test_bad_labels_are_refused_with_a_clear_message(gateway: GatewayProc, labels: Any, message: str) -> None:
    refused = create_key(gateway, labels=labels)
    assert refused.status_code == 422, refused.text
    assert message in refused.text and "Traceback" not in refused.text


def _cli(gw: GatewayProc, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_GATEWAY_")}
    env |= {"MCP_GATEWAY_URL": gw.base, "MCP_GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN}
    command = [sys.executable, "-m", "mcp_gateway.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)


@pytest.mark.parametrize("gateway", ["memory"], indirect=True)  # the CLI talks to the admin API: one store will do
def test_cli_sets_labels_and_previews_a_labelled_key_s_search(gateway: GatewayProc) -> None:
    created = _cli(gateway, "keys", "create", "--tenant", "acme", "--label", "team=payments", "--label", "tier=gold")
    assert created.returncode == 0, created.stderr
    assert "labels:   team=payments,tier=gold" in created.stdout
    listing = _cli(gateway, "keys", "list", "--tenant", "acme")
    assert "team=payments,tier=gold" in listing.stdout
    bad = _cli(gateway, "keys", "create", "--tenant", "acme", "--label", "team")
    assert bad.returncode == 2 and "use NAME=VALUE" in bad.stderr

    # The operator's search (globs only) finds `add`; the payments key's search (its rules) does not.
    query = ("tools", "keyed", "--search", "add two numbers", "-o", "json")
    assert "add" in [t["name"] for t in json.loads(_cli(gateway, *query).stdout)["tools"]]
    as_key = json.dumps({"keyId": "k1", "keyLabels": {"team": "payments"}})
    preview = json.loads(_cli(gateway, *query, "--as", as_key).stdout)
    assert preview["caller"] == "key:k1" and preview["tools"]
    assert "add" not in [t["name"] for t in preview["tools"]]


def test_resource_subscriptions_are_rate_limited(gateway: GatewayProc) -> None:
    """`resources/subscribe` is answered by the gateway itself, after the profile's rate limit."""
    url = gateway.url("subs")
    session = open_session(url)  # the first of the burst of 3
    headers = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "Mcp-Session-Id": session,
        "MCP-Protocol-Version": LEGACY,
    }
    subscribe = rpc("resources/subscribe", {"uri": "test://static-text"}, rid=2)
    for _ in range(2):
        assert "result" in httpx.post(url, json=subscribe, headers=headers).json()
    limited = httpx.post(url, json=subscribe, headers=headers)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["code"] == RATE_LIMITED
