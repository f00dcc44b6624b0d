"""Upstream -> adapter ConfigMap, Deployment, Service and NetworkPolicy, owned by
the Upstream; status and Events; drift repair; deletion through the garbage
collector."""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException
from mcp_adapter.config import HttpSource, OpenApiSource, parse_config

from tests.gateway.support import Spawn, mcp_client, start_feature
from tests.operator.conftest import OperatorEnv
from tests.operator.support import wait_for
from tests.support.processes import free_port

SECRET_VALUE = "s3cr3t-token-value-never-copied"
CREDS = {"name": "remote-creds", "key": "token"}


def _workload(env: OperatorEnv, namespace: str, name: str) -> tuple[Any, Any, Any] | None:
    res = env.res
    try:
        return (
            res.core.read_namespaced_config_map(f"{name}-adapter", namespace),
            res.apps.read_namespaced_deployment(f"{name}-adapter", namespace),
            res.core.read_namespaced_service(f"{name}-adapter", namespace),
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _policy(env: OperatorEnv, namespace: str, name: str) -> Any:
    try:
        return k8s.NetworkingV1Api(env.api).read_namespaced_network_policy(f"{name}-adapter", namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _peers(policy: Any) -> list[tuple[dict[str, str], dict[str, str]]]:
    """(namespace labels, pod labels) of every peer admitted by the policy's ingress rules."""
    return [
        (peer.namespace_selector.match_labels, peer.pod_selector.match_labels)
        for rule in policy.spec.ingress
        for peer in rule._from or []
    ]


def _observed(env: OperatorEnv, namespace: str, name: str) -> dict[str, Any] | None:
    obj = env.res.get("upstreams", namespace, name) or {}
    status = obj.get("status") or {}
    ready = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)
    if ready and ready["observedGeneration"] == obj["metadata"]["generation"] == status.get("observedGeneration"):
        return obj
    return None


def test_mcp_upstream_becomes_an_owned_adapter_workload(operator_env: OperatorEnv) -> None:
    env, res = operator_env, operator_env.res
    namespace = env.namespace()
    res.core.create_namespaced_secret(
        namespace, k8s.V1Secret(metadata=k8s.V1ObjectMeta(name="remote-creds"), string_data={"token": SECRET_VALUE})
    )
    spec = {
        "mcp": {
            "url": "https://tools.example.com/mcp",
            "headers": [
                {
                    "name": "Authorization",
                    "prefix": "Bearer ",
                    "secretKeyRef": {"name": "remote-creds", "key": "token"},
                },
                {"name": "X-Team", "value": "blue"},
            ],
        },
        "resources": {"limits": {"memory": "256Mi"}},
    }
    upstream = res.create("upstreams", namespace, "remote", spec)
    configmap, deployment, service = wait_for(lambda: _workload(env, namespace, "remote"), what="adapter workload")
    policy = wait_for(lambda: _policy(env, namespace, "remote"), what="adapter NetworkPolicy")

    for obj in (configmap, deployment, service, policy):
        (owner,) = obj.metadata.owner_references
        assert (owner.kind, owner.name, owner.uid, owner.controller) == (
            "Upstream",
            "remote",
            upstream["metadata"]["uid"],
            True,
        )
    # The config references the secret by env var; the value itself is nowhere in it.
    text = configmap.data["adapter.yaml"]
    assert SECRET_VALUE not in text
    source = yaml.safe_load(text)["sources"][0]
    assert source["type"] == "mcp" and source["url"] == "https://tools.example.com/mcp"
    assert source["headers"]["Authorization"] == {"fromEnv": "UPSTREAM_HEADER_0", "prefix": "Bearer "}
    assert source["headers"]["X-Team"] == "blue"
    container = deployment.spec.template.spec.containers[0]
    (env_var,) = container.env
    assert env_var.name == "UPSTREAM_HEADER_0"
    assert (env_var.value_from.secret_key_ref.name, env_var.value_from.secret_key_ref.key) == ("remote-creds", "token")
    # The adapter itself accepts the rendered config (given the env var the pod would have).
    os.environ["UPSTREAM_HEADER_0"] = "x"
    try:
        assert parse_config(yaml.safe_load(text)).sources[0].name == "remote"
    finally:
        del os.environ["UPSTREAM_HEADER_0"]

    security = container.security_context
    assert security.run_as_non_root and security.read_only_root_filesystem
    assert security.capabilities.drop == ["ALL"] and not security.allow_privilege_escalation
    assert security.seccomp_profile.type == "RuntimeDefault"
    assert container.resources.limits == {"memory": "256Mi"}
    assert deployment.spec.template.metadata.annotations["mcpgateway.dev/config-hash"]
    assert service.spec.ports[0].port == 8080

    # Only the gateway (namespace of the routing ConfigMap) and the operator (its Lease's namespace)
    # may reach the adapter pods, on the adapter port; other pods in the cluster may not.
    pod_labels = deployment.spec.template.metadata.labels
    assert policy.spec.pod_selector.match_labels.items() <= pod_labels.items()
    assert policy.spec.policy_types == ["Ingress"]
    (rule,) = policy.spec.ingress
    assert [(p.port, p.protocol) for p in rule.ports] == [(8080, "TCP")]
    system = {"kubernetes.io/metadata.name": env.system_namespace}
    assert _peers(policy) == [
        (system, {"app.kubernetes.io/name": "mcp-gateway", "app.kubernetes.io/component": "gateway"}),
        (system, {"app.kubernetes.io/name": "mcp-gateway", "app.kubernetes.io/component": "operator"}),
    ]
    # The adapter trusts the caller header (per-caller isolation) because only the gateway reaches it.
    assert yaml.safe_load(text)["server"]["trustCallerHeader"] is True

    # No kubelet: the adapter never answers, and the status says so honestly.
    obj = wait_for(lambda: _observed(env, namespace, "remote"), what="observed status")
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "AdapterNotReady")
    assert "0/1 replicas available" in ready["message"]
    assert obj["status"]["sourceType"] == "mcp"
    assert obj["status"]["endpoint"] == env.adapter_url(namespace, "remote")
    reasons = wait_for(
        lambda: (
            {r for r, _, _ in res.events(namespace, "remote")} >= {"Created", "AdapterNotReady"}
            and {r for r, _, _ in res.events(namespace, "remote")}
        ),
        what="events",
    )
    assert "Created" in reasons
    assert SECRET_VALUE not in env.process.log_text()


def test_spec_change_rolls_the_adapter(operator_env: OperatorEnv) -> None:
    env, res = operator_env, operator_env.res
    namespace = env.namespace()
    res.create("upstreams", namespace, "tools", {"stdio": {"command": "mcp-server-time", "args": ["--tz", "UTC"]}})
    first = wait_for(lambda: _observed(env, namespace, "tools"), what="first reconcile")
    _, deployment, _ = wait_for(lambda: _workload(env, namespace, "tools"))
    first_hash = deployment.spec.template.metadata.annotations["mcpgateway.dev/config-hash"]

    res.patch_spec("upstreams", namespace, "tools", {"stdio": {"args": ["--tz", "Europe/Paris"]}, "replicas": 2})

    def rolled() -> Any:
        _, dep, _ = _workload(env, namespace, "tools") or (None, None, None)
        new_hash = dep and dep.spec.template.metadata.annotations["mcpgateway.dev/config-hash"]
        return dep if new_hash and new_hash != first_hash and dep.spec.replicas == 2 else None

    wait_for(rolled, what="a new config hash on the pod template")
    configmap, _, _ = _workload(env, namespace, "tools") or (None, None, None)
    assert yaml.safe_load(configmap.data["adapter.yaml"])["sources"][0]["args"] == ["--tz", "Europe/Paris"]
    second = wait_for(
        lambda: (o := _observed(env, namespace, "tools")) and o["metadata"]["generation"] > 1 and o,
        what="status for generation 2",
    )
    assert second["status"]["observedGeneration"] == first["status"]["observedGeneration"] + 1
    # Kopf posts events from a queue of its own, so the event may land after the status it follows.
    reasons = [r for r, _, _ in res.wait_event(namespace, "tools", "Updated")]
    # The Deployment controller's own status updates are not drift.
    assert "DriftRepaired" not in reasons


def test_answering_adapter_reports_ready_with_tool_count(operator_env: OperatorEnv) -> None:
    env, res = operator_env, operator_env.res
    namespace = env.namespace()
    # "live-*" upstreams are answered by the stub standing in for the adapter pod (a real MCP server).
    res.create("upstreams", namespace, "live-tools", {"mcp": {"url": "https://tools.example.com/mcp"}})

    def ready() -> dict[str, Any] | None:
        condition = res.condition("upstreams", namespace, "live-tools")
        return condition if condition and condition["status"] == "True" else None

    condition = wait_for(ready, what="Ready=True")
    assert condition["reason"] == "AdapterReady"
    status = (res.get("upstreams", namespace, "live-tools") or {})["status"]
    assert status["toolCount"] > 10
    assert f"with {status['toolCount']} tools" in condition["message"]
    res.wait_event(namespace, "live-tools", "AdapterReady", "Normal")
    # `kubectl get upstreams` shows it.
    (row,) = res.table("upstreams", namespace)
    assert {k: row[k] for k in ("Name", "Type", "Ready", "Tools")} == {
        "Name": "live-tools",
        "Type": "mcp",
        "Ready": "True",
        "Tools": status["toolCount"],
    }
    assert row["Endpoint"] == env.adapter_url(namespace, "live-tools")


def test_deleted_or_edited_deployment_is_restored(operator_env: OperatorEnv) -> None:
    env, res = operator_env, operator_env.res
    namespace = env.namespace()
    res.create("upstreams", namespace, "drift", {"mcp": {"url": "https://tools.example.com/mcp"}})
    _, deployment, _ = wait_for(lambda: _workload(env, namespace, "drift"))
    wait_for(lambda: _observed(env, namespace, "drift"))
    image = deployment.spec.template.spec.containers[0].image

    res.apps.delete_namespaced_deployment("drift-adapter", namespace)
    restored = wait_for(
        lambda: (w := _workload(env, namespace, "drift")) and w[1].metadata.uid != deployment.metadata.uid and w[1],
        what="the Deployment to come back",
    )
    assert restored.spec.template.spec.containers[0].image == image

    patch = {"spec": {"template": {"spec": {"containers": [{"name": "adapter", "image": "evil:latest"}]}}}}
    res.apps.patch_namespaced_deployment("drift-adapter", namespace, patch)
    wait_for(
        lambda: (
            res.apps.read_namespaced_deployment("drift-adapter", namespace).spec.template.spec.containers[0].image
            == image
        ),
        what="the image edit to be reverted",
    )
    res.core.delete_namespaced_service("drift-adapter", namespace)
    wait_for(lambda: _workload(env, namespace, "drift"), what="the Service to come back")

    # Opening the adapter to every pod (an ingress rule with no `from`) is reverted; deleting it restores it.
    networking = k8s.NetworkingV1Api(env.api)
    declared = wait_for(lambda: _policy(env, namespace, "drift"), what="the NetworkPolicy")
    networking.patch_namespaced_network_policy("drift-adapter", namespace, {"spec": {"ingress": [{}]}})
    wait_for(
        lambda: (p := _policy(env, namespace, "drift")) and _peers(p) == _peers(declared) and len(p.spec.ingress) == 1,
        what="the opened NetworkPolicy to be restored",
    )
    networking.delete_namespaced_network_policy("drift-adapter", namespace)
    wait_for(
        lambda: (p := _policy(env, namespace, "drift")) and p.metadata.uid != declared.metadata.uid,
        what="the deleted NetworkPolicy to come back",
    )
    wait_for(
        lambda: (
            (messages := [m for r, _, m in res.events(namespace, "drift") if r == "DriftRepaired"])
            and any("was deleted" in m for m in messages)
            and any("changed by someone else" in m for m in messages)
        ),
        what="DriftRepaired Events for both repairs",
    )


def test_deleting_the_upstream_removes_its_workload(operator_env: OperatorEnv) -> None:
    env, res = operator_env, operator_env.res
    namespace = env.namespace()
    res.create("upstreams", namespace, "gone", {"mcp": {"url": "https://tools.example.com/mcp"}})
    wait_for(lambda: _workload(env, namespace, "gone"))
    wait_for(lambda: _policy(env, namespace, "gone"))
    wait_for(lambda: _observed(env, namespace, "gone"))
    upstream = res.get("upstreams", namespace, "gone") or {}
    assert not upstream["metadata"].get("finalizers")  # deletion never waits for the operator

    res.delete("upstreams", namespace, "gone")

    def all_gone() -> bool:
        names = [d.metadata.name for d in res.apps.list_namespaced_deployment(namespace).items]
        names += [c.metadata.name for c in res.core.list_namespaced_config_map(namespace).items]
        names += [s.metadata.name for s in res.core.list_namespaced_service(namespace).items]
        names += [p.metadata.name for p in k8s.NetworkingV1Api(env.api).list_namespaced_network_policy(namespace).items]
        return "gone-adapter" not in names

    wait_for(all_gone, timeout=60, what="garbage collection of the adapter workload")


def test_openapi_allowed_networks_reach_the_adapter_config(operator_env: OperatorEnv) -> None:
    env, res = operator_env, operator_env.res
    namespace = env.namespace()
    spec = {
        "openapi": {
            "spec": {"url": "https://api.example.com/openapi.json"},
            "baseUrl": "https://api.example.com",
            "allowedNetworks": ["10.0.12.0/24", "fd00::/64"],
        }
    }
    res.create("upstreams", namespace, "pets", spec)
    configmap, _, _ = wait_for(lambda: _workload(env, namespace, "pets"), what="adapter workload")
    config = yaml.safe_load(configmap.data["adapter.yaml"])
    assert config["sources"][0]["allowedNetworks"] == ["10.0.12.0/24", "fd00::/64"]
    assert "allowPrivateNetwork" not in config["sources"][0]
    parsed = parse_config(config).sources[0]
    assert isinstance(parsed, OpenApiSource) and parsed.allowed_networks == ["10.0.12.0/24", "fd00::/64"]


HTTP_TOOLS = {
    "baseUrl": "https://api.example.com/v1",
    "auth": {"type": "bearer", "secretName": "api-creds"},
    "headers": [{"name": "X-Team", "value": "blue"}],
    "tools": [
        {
            "name": "get_user",
            "description": "Read one user",
            "url": "/users/{id}",
            "inputSchema": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
        },
        {
            "name": "create_ticket",
            "method": "POST",
            "url": "https://tickets.example.com/tickets",
            "inputSchema": {"type": "object", "properties": {"title": {"type": "string"}}},
            "bodyFields": {"summary": "title"},
        },
    ],
}


def test_http_tools_reach_the_adapter_config(operator_env: OperatorEnv) -> None:
    env, res = operator_env, operator_env.res
    namespace = env.namespace()
    res.create("upstreams", namespace, "api", {"http": HTTP_TOOLS})
    configmap, deployment, _ = wait_for(lambda: _workload(env, namespace, "api"), what="adapter workload")
    config = yaml.safe_load(configmap.data["adapter.yaml"])
    source = config["sources"][0]
    assert (source["type"], source["baseUrl"], source["headers"]) == (
        "http",
        "https://api.example.com/v1",
        {"X-Team": "blue"},
    )
    assert source["auth"] == {"type": "bearer", "token": {"fromEnv": "UPSTREAM_AUTH_TOKEN"}}
    get_user, create_ticket = source["tools"]
    assert get_user["url"] == "/users/{id}" and get_user["method"] == "GET"
    assert create_ticket["body"] == {"summary": "title"} and create_ticket["method"] == "POST"
    (env_var,) = deployment.spec.template.spec.containers[0].env
    assert (env_var.name, env_var.value_from.secret_key_ref.name) == ("UPSTREAM_AUTH_TOKEN", "api-creds")
    os.environ["UPSTREAM_AUTH_TOKEN"] = "x"
    try:
        parsed = parse_config(config).sources[0]
    finally:
        del os.environ["UPSTREAM_AUTH_TOKEN"]
    assert isinstance(parsed, HttpSource) and [t.name for t in parsed.tools] == ["get_user", "create_ticket"]
    obj = wait_for(lambda: _observed(env, namespace, "api"), what="observed status")
    assert obj["status"]["sourceType"] == "http"


def test_http_tools_the_adapter_would_refuse_make_the_upstream_invalid(operator_env: OperatorEnv) -> None:
    env, res = operator_env, operator_env.res
    namespace = env.namespace()
    undeclared = {"tools": [{"name": "get_user", "url": "https://api.example.com/users/{id}"}]}
    res.create("upstreams", namespace, "undeclared", {"http": undeclared})
    relative = {"tools": [{"name": "list_users", "url": "/users"}]}
    res.create("upstreams", namespace, "relative", {"http": relative})

    def invalid(name: str) -> str | None:
        obj = _observed(env, namespace, name)
        ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready") if obj else None
        return ready["message"] if ready and ready["reason"] == "InvalidSpec" else None

    message = wait_for(lambda: invalid("undeclared"), what="InvalidSpec for an undeclared placeholder")
    assert "spec.http.tools[0]: URL placeholder {id} is not a property of inputSchema" in message
    message = wait_for(lambda: invalid("relative"), what="InvalidSpec for a relative URL")
    assert "spec.http.tools[0].url '/users' is relative: set spec.http.baseUrl" in message
    assert _workload(env, namespace, "undeclared") is None and _workload(env, namespace, "relative") is None

    # Fixing the spec brings the workload.
    fixed = {"tools": [{**undeclared["tools"][0], "inputSchema": {"type": "object", "properties": {"id": {}}}}]}
    res.patch_spec("upstreams", namespace, "undeclared", {"http": fixed})
    wait_for(lambda: _workload(env, namespace, "undeclared"), what="adapter workload once fixed")


async def test_the_rendered_config_runs_in_a_real_adapter(
    operator_env: OperatorEnv, spawn: Spawn, tmp_path: Path
) -> None:
    """No kubelet runs the adapter Pod here, so the test plays the Pod: the ConfigMap the operator
    rendered, mounted as a file, and the Secret the Deployment maps into the container's env,
    given to a real `mcp-adapter` process in front of a real MCP server."""
    env, res = operator_env, operator_env.res
    namespace = env.namespace()
    _, feature_url = start_feature(spawn, name="rendered-feature")
    res.core.create_namespaced_secret(
        namespace, k8s.V1Secret(metadata=k8s.V1ObjectMeta(name="remote-creds"), string_data={"token": SECRET_VALUE})
    )
    spec = {
        "mcp": {
            "url": feature_url,
            "headers": [
                {"name": "Authorization", "prefix": "Bearer ", "secretKeyRef": CREDS},
                # The feature server redacts Authorization; this one shows the Secret's value arrived.
                {"name": "X-Upstream-Token", "prefix": "t=", "secretKeyRef": CREDS},
                {"name": "X-Team", "value": "blue"},
            ],
        }
    }
    res.create("upstreams", namespace, "rendered", spec)
    configmap, deployment, _ = wait_for(lambda: _workload(env, namespace, "rendered"), what="adapter workload")
    config = tmp_path / "adapter.yaml"
    config.write_text(configmap.data["adapter.yaml"])
    pod_env = {}
    for var in deployment.spec.template.spec.containers[0].env:
        ref = var.value_from.secret_key_ref
        secret = res.core.read_namespaced_secret(ref.name, namespace)
        pod_env[var.name] = base64.b64decode(secret.data[ref.key]).decode()
    port = free_port()
    cmd = [sys.executable, "-m", "mcp_adapter.cli", "--config", str(config), "--port", str(port)]
    spawn(cmd, name="rendered-adapter", env=pod_env, ready_url=f"http://127.0.0.1:{port}/readyz", timeout=60)

    async with mcp_client(feature_url) as direct:
        expected = {t.name for t in (await direct.list_tools()).tools}
    async with mcp_client(f"http://127.0.0.1:{port}/mcp") as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert len(tools) == len(expected) > 5
        echo = next(name for name in tools if name == "echo" or name.endswith("__echo"))
        result = await client.call_tool(echo, {"text": "rendered"})
        assert result.content[0].text == "rendered"  # type: ignore[union-attr]
        whoami = next(name for name in tools if name == "whoami" or name.endswith("__whoami"))
        seen = ((await client.call_tool(whoami, {})).structured_content or {})["headers"]
    # The rendered header settings reached the upstream: the Secret's value and the plain one.
    assert seen["authorization"] == "<redacted>"
    assert seen["x-upstream-token"] == f"t={SECRET_VALUE}"
    assert seen["x-team"] == "blue"
