"""Tenant API keys from Kubernetes Secrets: the gateway, running as a ServiceAccount that may read
exactly the referenced Secrets (RBAC `resourceNames`, as the chart grants), accepts their values as
the tenant's keys, follows edits within seconds, never logs them, and refuses to mint admin-API keys
for a tenant whose keys come from Secrets only."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from kubernetes import client as k8s

from tests.gateway.support import ADMIN_TOKEN, MODERN, PEPPER, Spawn, modern_headers, profile, rpc
from tests.support.kube import ControlPlane, write_kubeconfig
from tests.support.processes import free_port

ALICE = "alice-key-0123456789abcdef-secret"
BOB = "bob-key-0123456789abcdef-secret"
OTHER = "other-key-0123456789abcdef-secret"
META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}


def status_with(base: str, profile_id: str, key: str) -> int:
    headers = {**modern_headers("tools/list"), "Authorization": f"Bearer {key}"}
    body = rpc("tools/list", {"_meta": META})
    return httpx.post(f"{base}/{profile_id}/mcp", json=body, headers=headers, timeout=10).status_code


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def secret(name: str, values: dict[str, str]) -> k8s.V1Secret:
    return k8s.V1Secret(metadata=k8s.V1ObjectMeta(name=name), string_data=values)


def gateway_identity(kube: ControlPlane, system: str, tenant_ns: str, tmp: Path) -> Path:
    """A ServiceAccount with the chart's gateway rules: the routing ConfigMap and one key Secret, by name."""
    with kube.api_client() as api:
        core, rbac = k8s.CoreV1Api(api), k8s.RbacAuthorizationV1Api(api)
        core.create_namespaced_service_account(system, {"metadata": {"name": "gw"}})
        grants = [(system, "configmaps", "routing"), (tenant_ns, "secrets", "acme-keys")]
        for namespace, resource, name in grants:
            rule = {
                "apiGroups": [""],
                "resources": [resource],
                "resourceNames": [name],
                "verbs": ["get", "list", "watch"],
            }
            rbac.create_namespaced_role(namespace, {"metadata": {"name": "gw"}, "rules": [rule]})
            binding = {
                "metadata": {"name": "gw"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "gw"},
                "subjects": [{"kind": "ServiceAccount", "name": "gw", "namespace": system}],
            }
            rbac.create_namespaced_role_binding(namespace, binding)
        request = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
        token = core.create_namespaced_service_account_token("gw", system, request).status.token
    return write_kubeconfig(tmp / "gw.kubeconfig", kube.server, token, user="gw")


def routing_doc(feature: str, tenant_ns: str, refs: list[str]) -> dict[str, Any]:
    return {
        "tenants": [
            {
                "id": "acme",
                "apiKeys": {"adminApi": False, "secretRefs": [{"namespace": tenant_ns, "name": n} for n in refs]},
            },
            {"id": "globex"},
        ],
        "profiles": [
            profile("acme-p", "acme", [("feat", feature)]),
            profile("globex-p", "globex", [("feat", feature)]),
        ],
    }


async def test_tenant_keys_come_from_referenced_secrets(
    spawn: Spawn, feature: str, kube: ControlPlane, tmp_path: Path
) -> None:
    system, tenant_ns = kube.namespace("gwsys"), kube.namespace("acme")
    core = k8s.CoreV1Api(kube.api_client())
    core.create_namespaced_secret(tenant_ns, secret("acme-keys", {"alice": ALICE, "tiny": "short"}))
    core.create_namespaced_secret(tenant_ns, secret("other-keys", {"eve": OTHER}))  # referenced, not granted
    doc = routing_doc(feature, tenant_ns, ["acme-keys", "other-keys"])
    configmap = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="routing"), data={"routing.yaml": yaml.safe_dump(doc)})
    core.create_namespaced_config_map(system, configmap)

    port = free_port()
    cmd = [sys.executable, "-m", "mcp_gateway.cli", "serve", "--routing-configmap", f"{system}/routing", "--port"]
    cmd += [str(port), "--kubeconfig", str(gateway_identity(kube, system, tenant_ns, tmp_path))]
    env = {"MCP_GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN, "MCP_GATEWAY_KEY_PEPPER": PEPPER}
    gateway = spawn(cmd, name="gw-secret-keys", env=env, ready_url=f"http://127.0.0.1:{port}/readyz")
    base = f"http://127.0.0.1:{port}"

    assert eventually(lambda: status_with(base, "acme-p", ALICE) == 200)
    assert status_with(base, "globex-p", ALICE) == 403  # a key of tenant acme never opens globex
    assert status_with(base, "acme-p", "short") == 401  # too short to be a key: ignored
    assert status_with(base, "acme-p", OTHER) == 401  # its Secret is not readable by the gateway
    assert eventually(lambda: "may not read Secret " + f"{tenant_ns}/other-keys" in gateway.log_text())

    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    refused = httpx.post(f"{base}/admin/v1/tenants/acme/keys", json={}, headers=admin, timeout=10)
    assert refused.status_code == 403 and "Secrets only" in refused.json()["detail"]
    minted = httpx.post(f"{base}/admin/v1/tenants/globex/keys", json={}, headers=admin, timeout=10)
    assert minted.status_code == 201 and status_with(base, "globex-p", minted.json()["key"]) == 200

    # Rotation: bob added, alice removed; the change lands within seconds.
    core.replace_namespaced_secret("acme-keys", tenant_ns, secret("acme-keys", {"bob": BOB}))
    assert eventually(lambda: status_with(base, "acme-p", BOB) == 200)
    assert eventually(lambda: status_with(base, "acme-p", ALICE) == 401)

    # Dropping the reference from the routing config ends the Secret's keys too.
    doc = routing_doc(feature, tenant_ns, [])
    core.patch_namespaced_config_map("routing", system, {"data": {"routing.yaml": yaml.safe_dump(doc)}})
    assert eventually(lambda: status_with(base, "acme-p", BOB) == 401)

    log = gateway.log_text()
    assert all(value not in log for value in (ALICE, BOB, OTHER))
    assert f"{tenant_ns}/acme-keys" in log  # what changed is logged, by reference


def call_add(base: str, key: str) -> dict[str, Any]:
    body = rpc("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}, "_meta": META})
    headers = {**modern_headers("tools/call", "add"), "Authorization": f"Bearer {key}"}
    answer: dict[str, Any] = httpx.post(f"{base}/acme-p/mcp", json=body, headers=headers, timeout=10).json()
    return answer


def refused_by(base: str, key: str) -> str | None:
    """The rule that refused `add` for this key, "" when it was not refused, None when the key did not work."""
    answer = call_add(base, key)
    if "result" in answer:
        return ""
    return (answer["error"].get("data") or {}).get("rule")


async def test_secret_annotations_label_its_keys_for_policy_rules(
    spawn: Spawn, feature: str, kube: ControlPlane, tmp_path: Path
) -> None:
    """`labels.mcpgateway.dev/<label>` labels every key of the Secret, `mcpgateway.dev/key-labels` one
    key; rules read them as `key.labels`, the audit log records them, edits land within seconds, and
    labels that are not valid keep their keys out of service (never unlabelled past a deny rule)."""
    system, tenant_ns = kube.namespace("gwsys"), kube.namespace("acme")
    core = k8s.CoreV1Api(kube.api_client())
    annotations = {"labels.mcpgateway.dev/team": "payments", "mcpgateway.dev/key-labels": '{"bob": {"team": "search"}}'}
    keys = k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name="acme-keys", annotations=annotations), string_data={"alice": ALICE, "bob": BOB}
    )
    core.create_namespaced_secret(tenant_ns, keys)
    doc = routing_doc(feature, tenant_ns, ["acme-keys"])
    rule = {"name": "payments-cannot-add", "effect": "deny", "kinds": ["tool"],
            "when": 'name == "add" && has(key.labels.team) && key.labels.team == "payments"'}  # fmt: skip
    doc["profiles"][0]["policy"] = {"rules": [rule]}
    configmap = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="routing"), data={"routing.yaml": yaml.safe_dump(doc)})
    core.create_namespaced_config_map(system, configmap)
    port = free_port()
    cmd = [sys.executable, "-m", "mcp_gateway.cli", "serve", "--routing-configmap", f"{system}/routing", "--port"]
    cmd += [str(port), "--kubeconfig", str(gateway_identity(kube, system, tenant_ns, tmp_path))]
    env = {"MCP_GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN, "MCP_GATEWAY_KEY_PEPPER": PEPPER}
    gateway = spawn(cmd, name="gw-secret-labels", env=env, ready_url=f"http://127.0.0.1:{port}/readyz")
    base = f"http://127.0.0.1:{port}"

    assert eventually(lambda: refused_by(base, ALICE) == "payments-cannot-add")  # the Secret-wide label
    assert refused_by(base, BOB) == ""  # its own label overrides the Secret's
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    items = httpx.get(f"{base}/admin/v1/audit", params={"profile": "acme-p"}, headers=admin, timeout=10).json()
    refused = [i for i in items["items"] if i["outcome"] == "policy_refused"]
    assert refused and refused[0]["caller"] == f"secret:{tenant_ns}/acme-keys/alice"
    assert refused[0]["identity"]["keyLabels"] == {"team": "payments"}

    # Moving alice to another team is an annotation edit, effective within seconds.
    patch = {"metadata": {"annotations": {"mcpgateway.dev/key-labels": '{"alice": {"team": "search"}}'}}}
    core.patch_namespaced_secret("acme-keys", tenant_ns, patch)
    assert eventually(lambda: refused_by(base, ALICE) == "")
    assert eventually(lambda: refused_by(base, BOB) == "payments-cannot-add")  # bob lost his own label

    # A label that is not valid takes the key out of service rather than leaving it unlabelled.
    core.patch_namespaced_secret(
        "acme-keys", tenant_ns, {"metadata": {"annotations": {"labels.mcpgateway.dev/team": "x" * 200}}}
    )
    assert eventually(lambda: status_with(base, "acme-p", BOB) == 401)
    assert status_with(base, "acme-p", ALICE) == 401
    assert eventually(lambda: "at most 128 characters" in gateway.log_text())
    assert all(value not in gateway.log_text() for value in (ALICE, BOB))
