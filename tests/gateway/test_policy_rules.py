"""Per-caller CEL policy rules (`policy.rules`) through a real gateway process, with OIDC tokens
from the tests' JWKS issuer, in both protocol eras: lists filtered per caller, a hidden tool
refused when called by its name, refusals naming the rule but never its expression, rules on
arguments, upstream and claims, a claim of the wrong type refused cleanly, and the discovery
meta-tools (`search_tools`, `call_tool`) held to the same rules."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from mcp.shared.exceptions import MCPError

from tests.gateway.support import (
    ADMIN_TOKEN,
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
from tests.support.jwks import Issuer, oidc_settings, running_issuer

ERAS = ["legacy", MODERN]
FORBIDDEN = -32003
RULES: list[dict[str, Any]] = [
    {
        "name": "interns-cannot-add",
        "effect": "deny",
        "when": 'name == "add" && has(claims.groups) && "interns" in claims.groups',
        "kinds": ["tool"],
    },
    {"name": "small-sums-only", "effect": "deny", "when": 'name == "add" && arguments.a > 100', "kinds": ["tool"]},
    {"name": "only-feat", "effect": "deny", "when": 'upstream != "feat"', "kinds": ["tool"]},
    {"name": "alice-prompts", "effect": "allow", "when": 'claims.sub == "alice"', "kinds": ["prompt"]},
    {"name": "no-binary-for-bob", "effect": "deny", "when": 'claims.sub == "bob" && name.endsWith("binary")',
     "kinds": ["resource"]},
]  # fmt: skip
SECRET_BITS = ("interns", "claims", "arguments.a", "100", "upstream !=")


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with running_issuer("k1") as issuer:
        yield issuer


@pytest.fixture(scope="module")
def gateway(
    spawn_module: Spawn, feature_module: str, tmp_path_factory: pytest.TempPathFactory, issuer: Issuer
) -> GatewayProc:
    auth = {"mode": "oidc", "oidc": oidc_settings(issuer.url)}
    config = write_config(
        tmp_path_factory.mktemp("rules") / "routing.yaml",
        {
            "gateway": {"allowPrivateJwks": True},
            "tenants": [{"id": "acme"}],
            "profiles": [
                profile("ruled", "acme", [("feat", feature_module)], auth=auth, policy={"rules": RULES}),
                profile(
                    "found",
                    "acme",
                    [("feat", feature_module)],
                    auth=auth,
                    policy={"rules": RULES},
                    discovery={"mode": "search"},
                ),
                profile(
                    "hybrid",
                    "acme",
                    [("feat", feature_module)],
                    auth=auth,
                    policy={"rules": RULES},
                    discovery={"mode": "hybrid"},
                ),
            ],
        },
    )
    return start_gateway(spawn_module, config, name="gw-rules")


def bearer(issuer: Issuer, **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.token('k1', **claims)}"}


def assert_explained(error: MCPError, rule: str) -> None:
    assert error.error.code == FORBIDDEN, error.error
    assert repr(rule) in error.error.message
    assert error.error.data == {"rule": rule, "reason": "deny"}
    for secret in SECRET_BITS:  # the rule's name is told, its expression never is
        assert secret not in error.error.message.replace(rule, "")


@pytest.mark.parametrize("mode", ERAS)
async def test_lists_are_filtered_per_caller_and_hidden_tools_refused(
    gateway: GatewayProc, issuer: Issuer, mode: str
) -> None:
    alice = bearer(issuer, sub="alice", groups=["dev"])
    bob = bearer(issuer, sub="bob", groups=["interns"])
    async with mcp_client(gateway.url("ruled"), alice, mode=mode) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"add", "echo"} <= tools
        assert (await client.call_tool("add", {"a": 2, "b": 40})).structured_content == {"a": 2, "b": 40, "sum": 42}
        assert (await client.list_prompts()).prompts  # the allow rule admits alice's prompts
    async with mcp_client(gateway.url("ruled"), bob, mode=mode) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert "add" not in tools and "echo" in tools
        assert (await client.list_prompts()).prompts == []  # no allow rule admits bob
        with pytest.raises(MCPError) as refused:
            await client.call_tool("add", {"a": 1, "b": 2})  # guessing the hidden name does not help
        assert_explained(refused.value, "interns-cannot-add")
        with pytest.raises(MCPError) as prompt:
            await client.get_prompt("test_simple_prompt")
        assert prompt.value.error.code == FORBIDDEN
        assert "no allow rule" in prompt.value.error.message
        assert (await client.call_tool("echo", {"text": "hi"})).content[0].text == "hi"  # type: ignore[union-attr]
        uris = {str(r.uri) for r in (await client.list_resources()).resources}
        assert "test://static-text" in uris and "test://static-binary" not in uris
        with pytest.raises(MCPError) as resource:
            await client.read_resource("test://static-binary")
        assert resource.value.error.code == FORBIDDEN
        assert resource.value.error.data == {"rule": "no-binary-for-bob", "reason": "deny"}


@pytest.mark.parametrize("mode", ERAS)
async def test_rules_read_the_call_s_arguments(gateway: GatewayProc, issuer: Issuer, mode: str) -> None:
    async with mcp_client(gateway.url("ruled"), bearer(issuer, sub="alice"), mode=mode) as client:
        assert "add" in {t.name for t in (await client.list_tools()).tools}  # listed: some arguments pass
        with pytest.raises(MCPError) as refused:
            await client.call_tool("add", {"a": 500, "b": 1})
        assert_explained(refused.value, "small-sums-only")
        assert (await client.call_tool("add", {"a": 100, "b": 1})).structured_content["sum"] == 101  # type: ignore[index]


def test_a_claim_of_the_wrong_type_is_a_clear_refusal(gateway: GatewayProc, issuer: Issuer) -> None:
    """`groups` as a string: the deny rule cannot be evaluated, so it refuses (fail closed) and says so."""
    headers = {**modern_headers("tools/call", "add"), **bearer(issuer, sub="carol", groups="interns")}
    response = httpx.post(gateway.url("ruled"), json=modern_call("add", {"a": 1, "b": 2}), headers=headers, timeout=10)
    assert response.status_code == 200
    error = response.json()["error"]
    assert error["code"] == FORBIDDEN
    assert error["data"] == {"rule": "interns-cannot-add", "reason": "error"}
    assert "could not be evaluated for this caller" in error["message"]
    assert "Traceback" not in response.text and "overload" not in response.text
    # Other tools are not affected by that rule, and the gateway keeps serving.
    echo = modern_call("echo", {"text": "still here"})
    headers = {**modern_headers("tools/call", "echo"), **bearer(issuer, sub="carol", groups="interns")}
    answer = httpx.post(gateway.url("ruled"), json=echo, headers=headers, timeout=10).json()
    assert answer["result"]["content"][0]["text"] == "still here"


@pytest.mark.parametrize("mode", ERAS)
async def test_discovery_meta_tools_respect_the_rules(gateway: GatewayProc, issuer: Issuer, mode: str) -> None:
    bob = bearer(issuer, sub="bob", groups=["interns"])
    async with mcp_client(gateway.url("found"), bob, mode=mode) as client:
        found = (await client.call_tool("search_tools", {"query": "add two numbers together"})).structured_content
        assert found is not None
        assert "add" not in [t["name"] for t in found["tools"]]
        with pytest.raises(MCPError) as refused:
            await client.call_tool("call_tool", {"name": "add", "arguments": {"a": 1, "b": 2}})
        assert "unknown tool 'add'" in refused.value.error.message  # hidden: as if it did not exist
    alice = bearer(issuer, sub="alice")
    async with mcp_client(gateway.url("found"), alice, mode=mode) as client:
        found = (await client.call_tool("search_tools", {"query": "add two numbers together"})).structured_content
        assert found is not None and found["tools"][0]["name"] == "add"
        with pytest.raises(MCPError) as refused:
            await client.call_tool("call_tool", {"name": "add", "arguments": {"a": 500, "b": 2}})
        assert_explained(refused.value, "small-sums-only")


@pytest.mark.parametrize("mode", ERAS)
async def test_the_hybrid_full_list_respects_the_rules(gateway: GatewayProc, issuer: Issuer, mode: str) -> None:
    """`hybrid`'s full list (`?tools=all`) is the ordinary list: filtered for each caller too."""
    url = gateway.url("hybrid") + "?tools=all"
    async with mcp_client(url, bearer(issuer, sub="bob", groups=["interns"]), mode=mode) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert "echo" in tools and "add" not in tools and "search_tools" not in tools
    async with mcp_client(url, bearer(issuer, sub="alice"), mode=mode) as client:
        assert {"add", "echo"} <= {t.name for t in (await client.list_tools()).tools}


def test_a_rule_that_does_not_compile_never_reaches_the_gateway(
    spawn: Spawn, feature: str, tmp_path: Any, issuer: Issuer
) -> None:
    """`mcp-gateway validate` and the gateway refuse the config with the compiler's message."""
    bad = [{"name": "typo", "effect": "deny", "when": 'nme == "add"'}]
    path = write_config(
        tmp_path / "routing.yaml",
        {"tenants": [{"id": "acme"}], "profiles": [profile("p", "acme", [("feat", feature)], policy={"rules": bad})]},
    )
    result = subprocess.run(
        [sys.executable, "-m", "mcp_gateway.cli", "validate", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "rule 'typo' does not compile" in out and "undeclared reference to 'nme'" in out, out
    assert "Traceback" not in out
    json.dumps(bad)  # the config is otherwise valid


def _cli(*args: str, gateway: GatewayProc | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_GATEWAY_")}
    if gateway is not None:
        env |= {"MCP_GATEWAY_URL": gateway.base, "MCP_GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN}
    command = [sys.executable, "-m", "mcp_gateway.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)


def test_tools_as_shows_what_a_caller_would_see(gateway: GatewayProc, tmp_path: Path) -> None:
    bob = _cli("tools", "ruled", "--as", '{"sub": "bob", "groups": ["interns"]}', gateway=gateway)
    assert bob.returncode == 0, bob.stderr
    assert "Profile ruled as sub:bob" in bob.stdout
    add = next(line for line in bob.stdout.splitlines() if line.startswith("add "))
    assert "hidden (rule interns-cannot-add)" in add
    echo = next(line for line in bob.stdout.splitlines() if line.startswith("echo "))
    assert "listed" in echo

    claims = tmp_path / "alice.json"
    claims.write_text(json.dumps({"sub": "alice", "groups": ["dev"]}))
    alice = _cli("tools", "ruled", "--as", f"@{claims}", "-o", "json", gateway=gateway)
    data = json.loads(alice.stdout)
    tools = {t["name"]: t for t in data["tools"]}
    assert tools["add"]["allowed"] is True and data["caller"] == "sub:alice"
    assert data["rules"] == [r["name"] for r in RULES]

    for bad, message in (("[1]", "must be a JSON object"), ("{sub", "not JSON"), ("@/nonexistent", "cannot read")):
        refused = _cli("tools", "ruled", "--as", bad, gateway=gateway)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr


def test_validate_compiles_a_profile_manifest_s_rules_offline(tmp_path: Path) -> None:
    manifest = {
        "apiVersion": "mcpgateway.dev/v1alpha1",
        "kind": "Profile",
        "metadata": {"name": "p", "namespace": "tools"},
        "spec": {
            "upstreams": [{"name": "a"}],
            "policy": {"rules": [RULES[0], {"name": "broken", "effect": "deny", "when": "name.startsWith(1)"}]},
        },
    }
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(manifest))
    result = _cli("validate", str(path))
    assert result.returncode == 1
    assert "spec.policy.rules[1].when: rule 'broken' does not compile" in result.stdout, result.stdout
    assert "rules[0]" not in result.stdout


async def test_a_running_gateway_keeps_its_last_good_rules_when_a_rule_does_not_compile(
    spawn: Spawn, feature: str, tmp_path: Path, issuer: Issuer
) -> None:
    auth = {"mode": "oidc", "oidc": oidc_settings(issuer.url)}

    def routing(rules: list[dict[str, Any]]) -> dict[str, Any]:
        ruled = profile("ruled", "acme", [("feat", feature)], auth=auth, policy={"rules": rules})
        return {"gateway": {"allowPrivateJwks": True}, "tenants": [{"id": "acme"}], "profiles": [ruled]}

    path = write_config(tmp_path / "routing.yaml", routing(RULES))
    gw = start_gateway(spawn, path, name="gw-rules-reload")
    bob = bearer(issuer, sub="bob", groups=["interns"])
    # Without the interns rule but with a rule that does not compile: the whole file is refused.
    write_config(path, routing([*RULES[1:], {"name": "typo", "effect": "allow", "when": "claims.sub =="}]))
    deadline = asyncio.get_running_loop().time() + 20
    while "keeping the last good config" not in gw.process.log_text():
        assert asyncio.get_running_loop().time() < deadline, gw.process.log_text()[-2000:]
        await asyncio.sleep(0.2)
    assert "rule 'typo' does not compile" in gw.process.log_text()
    async with mcp_client(gw.url("ruled"), bob) as client:
        assert "add" not in {t.name for t in (await client.list_tools()).tools}  # still the old rules
    write_config(path, routing(RULES[1:]))  # fixed: now bob sees add
    while True:
        async with mcp_client(gw.url("ruled"), bob) as client:
            if "add" in {t.name for t in (await client.list_tools()).tools}:
                break
        assert asyncio.get_running_loop().time() < deadline + 20
        await asyncio.sleep(0.3)


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
async def test_resource_subscriptions_are_judged_for_the_caller(
    spawn: Spawn, feature_module: str, tmp_path: Path, issuer: Issuer
) -> None:
    """Handshake-era `resources/subscribe` is answered before the request reaches the backend; its
    rule check must still see the caller: bob may not subscribe to what is hidden from him, alice may."""
    rules = [
        {"name": "no-binary-for-bob", "effect": "deny", "kinds": ["resource"],
         "when": 'caller.subject == "sub:bob" && name.endsWith("binary")'},
        {"name": "carol-only-text", "effect": "deny", "when": 'claims.sub == "carol" && name.endsWith("binary")',
         "kinds": ["resource"]},
    ]  # fmt: skip
    auth = {"mode": "oidc", "oidc": oidc_settings(issuer.url)}
    config = write_config(
        tmp_path / "routing.yaml",
        {
            "gateway": {"allowPrivateJwks": True},
            "tenants": [{"id": "acme"}],
            "profiles": [profile("subs", "acme", [("feat", feature_module)], auth=auth, policy={"rules": rules})],
        },
    )
    gw = start_gateway(spawn, config, name="gw-rules-subs")
    async with mcp_client(gw.url("subs"), bearer(issuer, sub="bob"), mode="legacy") as client:
        assert "test://static-binary" not in {str(r.uri) for r in (await client.list_resources()).resources}
        with pytest.raises(MCPError) as refused:
            await client.subscribe_resource("test://static-binary")
        assert_explained(refused.value, "no-binary-for-bob")
        await client.subscribe_resource("test://static-text")
    async with mcp_client(gw.url("subs"), bearer(issuer, sub="alice"), mode="legacy") as client:
        await client.subscribe_resource("test://static-binary")  # claims.sub is readable: not fail-closed
    with gw.admin() as admin:  # the refusal is audited like a refused read
        items = admin.get("/admin/v1/audit", params={"profile": "subs"}).json()["items"]
    assert [(i["kind"], i["tool"], i["rule"], i["identity"]["sub"]) for i in items] == [
        ("resource", "test://static-binary", "no-binary-for-bob", "bob")
    ]
