"""`mcp-gateway validate | keys | tools`, run as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from mcp_gateway.auth.apikeys import KEY_SCHEME
from mcp_gateway.validate import CEL_RULES, cel_rules, crd_schemas

from tests.gateway.support import ADMIN_TOKEN, GatewayProc, Spawn, profile, rpc, start_gateway, write_config

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_GATEWAY_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "mcp_gateway.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=full_env,
        cwd=REPO,
        check=False,
    )


def test_validate_accepts_the_shipped_examples() -> None:
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "examples" / "k8s").glob("*.yaml"))
    result = cli("validate", *files, "examples/local.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all" in result.stdout and "valid" in result.stdout


def test_validate_reports_every_problem_with_its_path(tmp_path: Path) -> None:
    manifests = [
        {
            "apiVersion": "mcpgateway.dev/v1alpha1",
            "kind": "Tenant",
            "metadata": {"name": "acme"},
            "spec": {"namespaces": ["tools"]},
        },
        {
            "apiVersion": "mcpgateway.dev/v1alpha1",
            "kind": "Upstream",
            "metadata": {"name": "docs", "namespace": "tools"},
            "spec": {"mcp": {"url": "http://docs:8080/mcp"}, "timeoutSeconds": "soon"},
        },
        {
            "apiVersion": "mcpgateway.dev/v1alpha1",
            "kind": "Profile",
            "metadata": {"name": "dev", "namespace": "tools"},
            "spec": {"upstreams": [{"name": "docs"}, {"name": "missing"}], "auth": {"mode": "oidc"}, "polcy": {}},
        },
        {
            "apiVersion": "mcpgateway.dev/v1alpha1",
            "kind": "Profile",
            "metadata": {"name": "stray", "namespace": "elsewhere"},
            "spec": {"upstreams": [{"name": "docs"}]},
        },
    ]
    bad_manifests = tmp_path / "bad-manifests.yaml"
    bad_manifests.write_text(yaml.safe_dump_all(manifests))
    routing = write_config(
        tmp_path / "routing.yaml",
        {"tenants": [{"id": "acme"}], "profiles": [profile("dev", "globex", [("up", "ftp://nowhere")])]},
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("tenants: [\n")

    result = cli("validate", str(bad_manifests), str(routing), str(broken))
    assert result.returncode == 1
    out = result.stdout
    assert "Upstream tools/docs (document 2): spec.timeoutSeconds" in out
    assert "Profile tools/dev (document 3): spec.polcy: unknown field" in out
    assert "spec.auth" in out and "oidc" in out
    assert "spec.upstreams[1].name: no Upstream 'missing' in namespace 'tools'" in out
    assert "Profile elsewhere/stray (document 4): metadata.namespace" in out
    assert "profiles[0].upstreams[0].url" in out
    assert "line 2" in out
    assert "0 of 3 file(s) valid" in out

    as_json = cli("validate", "--output", "json", str(bad_manifests), str(routing))
    report = json.loads(as_json.stdout)
    assert report["valid"] is False and as_json.returncode == 1
    paths = [p["path"] for p in report["files"][0]["problems"]]
    assert any(p.endswith("spec.upstreams[1].name") for p in paths)
    assert report["files"][1]["kind"] == "routing config"


@pytest.fixture
def gateway(spawn: Spawn, feature: str, tmp_path: Path) -> GatewayProc:
    policy = {"tools": {"allow": ["*"], "deny": ["slow", "big_*"]}}
    config = write_config(
        tmp_path / "routing.yaml",
        {
            "tenants": [{"id": "acme"}],
            "profiles": [profile("acme-dev", "acme", [("feat", feature)], policy=policy)],
        },
    )
    return start_gateway(spawn, config, name="gateway-cli")


def _mcp_status(gateway: GatewayProc, key: str) -> int:
    headers = {"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {key}"}
    body: dict[str, Any] = rpc(
        "tools/list",
        {
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
            }
        },
    )
    headers.update({"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list"})
    return httpx.post(gateway.url("acme-dev"), json=body, headers=headers, timeout=10).status_code


def test_keys_and_tools_through_the_admin_api(gateway: GatewayProc, tmp_path: Path) -> None:
    env = {"MCP_GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN, "MCP_GATEWAY_URL": gateway.base}
    created = cli("keys", "create", "--tenant", "acme", "--name", "ci", "--expires-in", "30d", env=env)
    assert created.returncode == 0, created.stderr
    key = next(line.strip() for line in created.stdout.splitlines() if line.strip().startswith(f"{KEY_SCHEME}_"))
    assert "cannot show it again" in created.stderr
    assert _mcp_status(gateway, key) == 200

    token_file = tmp_path / "admin-token"
    token_file.write_text(ADMIN_TOKEN + "\n")
    as_json = cli(
        "keys",
        "create",
        "--tenant",
        "acme",
        "--profile",
        "acme-dev",
        "-o",
        "json",
        "--url",
        gateway.base,
        "--token-file",
        str(token_file),
    )
    second = json.loads(as_json.stdout)
    assert second["profiles"] == ["acme-dev"] and second["key"]

    listed = cli("keys", "list", "--tenant", "acme", env=env)
    assert listed.returncode == 0
    assert "PREFIX" in listed.stdout and "ci" in listed.stdout and key not in listed.stdout
    listed_json = json.loads(cli("keys", "list", "--tenant", "acme", "-o", "json", env=env).stdout)
    first_id = next(k["id"] for k in listed_json if k["name"] == "ci")

    revoked = cli("keys", "revoke", first_id, env=env)
    assert revoked.returncode == 0 and "Revoked" in revoked.stdout
    assert _mcp_status(gateway, key) == 401
    assert "revoked" in cli("keys", "list", "--tenant", "acme", env=env).stdout

    tools = cli("tools", "acme-dev", env=env)
    assert tools.returncode == 0, tools.stderr
    lines = {line.split()[0]: line for line in tools.stdout.splitlines()[2:] if line.strip()}
    assert "exposed" in lines["echo"] and "hidden" in lines["slow"] and "hidden" in lines["big_output"]
    tools_json = json.loads(cli("tools", "acme-dev", "-o", "json", env=env).stdout)
    marks = {t["name"]: t["allowed"] for t in tools_json["tools"]}
    assert marks["echo"] is True and marks["slow"] is False

    unknown = cli("tools", "nope", env=env)
    assert unknown.returncode == 1 and "unknown profile" in unknown.stderr
    wrong = cli("keys", "list", "--tenant", "acme", env={**env, "MCP_GATEWAY_ADMIN_TOKEN": "wrong-token"})
    assert wrong.returncode == 2 and "refused" in wrong.stderr
    missing = cli("keys", "list", "--tenant", "acme", env={"MCP_GATEWAY_URL": gateway.base})
    assert missing.returncode == 2 and "MCP_GATEWAY_ADMIN_TOKEN" in missing.stderr
    unreachable = cli("tools", "acme-dev", "--url", "http://127.0.0.1:9", env=env)
    assert unreachable.returncode == 2 and "cannot reach" in unreachable.stderr


def test_validate_checks_the_crds_cel_rules_offline(tmp_path: Path) -> None:
    upstream = {
        "apiVersion": "mcpgateway.dev/v1alpha1",
        "kind": "Upstream",
        "metadata": {"name": "petstore", "namespace": "tools"},
        "spec": {
            "openapi": {
                "spec": {"url": "https://petstore.example.com/openapi.json"},
                "allowedNetworks": ["10.0.12.0/24", "nope", "fd00::/64", "10.0.0.1"],
                "headers": [{"name": "X-Team", "value": "a", "secretKeyRef": {"name": "s", "key": "k"}}],
            }
        },
    }
    manifest = tmp_path / "upstream.yaml"
    manifest.write_text(yaml.safe_dump(upstream))
    result = cli("validate", str(manifest))
    assert result.returncode == 1
    out = result.stdout
    assert "spec.openapi.allowedNetworks[1]: each allowedNetworks entry must be a CIDR range" in out
    assert "spec.openapi.allowedNetworks[3]" in out  # an address without a prefix length is no CIDR
    assert "allowedNetworks[0]" not in out and "allowedNetworks[2]" not in out
    assert "spec.openapi.headers[0]: each header needs exactly one of value or secretKeyRef" in out


def test_validate_checks_http_tools_offline(tmp_path: Path) -> None:
    tool = {"name": "create", "method": "POST", "url": "https://api.example.com/x", "body": "arguments"}
    upstream = {
        "apiVersion": "mcpgateway.dev/v1alpha1",
        "kind": "Upstream",
        "metadata": {"name": "api", "namespace": "tools"},
        "spec": {"http": {"tools": [tool, {**tool, "name": "bad", "bodyFields": {"k": "v"}}]}},
    }
    manifest = tmp_path / "upstream.yaml"
    manifest.write_text(yaml.safe_dump(upstream))
    out = cli("validate", str(manifest)).stdout
    assert "spec.http.tools[1]: set either body (arguments or field) or bodyFields, not both" in out
    assert "tools[0]" not in out


def test_validate_checks_token_exchange_offline(tmp_path: Path) -> None:
    exchange = {"tokenEndpoint": "https://id.example.com/token", "issuer": "https://id.example.com", "clientId": "gw"}
    exchange |= {"clientSecret": {"secretKeyRef": {"name": "s", "key": "k"}}, "audience": "orders-api"}
    tool = {"name": "orders", "url": "https://api.example.com/orders"}
    upstream = {
        "apiVersion": "mcpgateway.dev/v1alpha1",
        "kind": "Upstream",
        "metadata": {"name": "api", "namespace": "tools"},
        "spec": {"tokenExchange": exchange, "http": {"tools": [tool], "auth": {"type": "bearer"}}},
    }
    manifest = tmp_path / "upstream.yaml"
    manifest.write_text(yaml.safe_dump(upstream))
    out = cli("validate", str(manifest)).stdout
    assert "spec.tokenExchange: tokenExchange needs exactly one of tokenEndpoint and issuer" in out
    assert "spec.http.auth: auth.type bearer, basic and apiKey need auth.secretName" in out
    del exchange["issuer"]
    upstream["spec"]["http"]["auth"] = {"type": "exchanged"}  # type: ignore[index]
    manifest.write_text(yaml.safe_dump(upstream))
    assert cli("validate", str(manifest)).returncode == 0


def test_validate_checks_connections_offline(tmp_path: Path) -> None:
    exchange = {"issuer": "https://id.example.com", "clientId": "gw", "audience": "orders-api"}
    exchange |= {"clientSecret": {"secretKeyRef": {"name": "s", "key": "k"}}}
    connection = {"clientId": "gw", "tokenEndpoint": "https://crm.example.com/token"}
    spec = {"mcp": {"url": "https://crm.example.com/mcp", "auth": {"type": "connection"}}, "connection": connection}
    upstream = {
        "apiVersion": "mcpgateway.dev/v1alpha1",
        "kind": "Upstream",
        "metadata": {"name": "crm", "namespace": "tools"},
        "spec": {**spec, "tokenExchange": exchange},
    }
    manifest = tmp_path / "upstream.yaml"
    manifest.write_text(yaml.safe_dump(upstream))
    out = cli("validate", str(manifest)).stdout
    assert "set spec.tokenExchange or spec.connection, not both" in out
    assert "connection needs issuer (discovery) or both authorizationEndpoint and tokenEndpoint" in out
    upstream["spec"] = {"mcp": spec["mcp"]}
    manifest.write_text(yaml.safe_dump(upstream))
    assert "which only spec.connection supplies: set spec.connection" in cli("validate", str(manifest)).stdout
    upstream["spec"] = {**spec, "connection": {**connection, "issuer": "https://login.crm.example.com"}}
    manifest.write_text(yaml.safe_dump(upstream))
    assert cli("validate", str(manifest)).returncode == 0


def test_every_crd_cel_rule_is_checked_offline() -> None:
    """A CEL rule added to a CRD must be ported to `validate.CEL_RULES`, or `validate` would let it pass."""
    rules = {rule for schema in crd_schemas().values() for rule in cel_rules(schema)}
    assert rules and rules <= set(CEL_RULES), sorted(rules - set(CEL_RULES))
