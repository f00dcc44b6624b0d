"""The chart on a real node (tests/support/node.py): `helm install` with the locally built
images brings the operator and two gateway replicas to Ready under the chart's own security
settings, on PostgreSQL running as a pod (conftest.py); an Upstream becomes an adapter pod
running a stdio MCP server; an MCP client on the host calls its tool through the gateway's
ClusterIP Service (kube-proxy's rules), the gateway reaching the adapter by its Service DNS
name (CoreDNS); the replicas share keys, sessions and audit through PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient
from mcp_types import TextContent

from tests.chart.support import CHART, helm
from tests.gateway.support import LEGACY, MODERN, mcp_client, open_session, rpc, session_ping
from tests.pods.support import (
    API,
    GATEWAY_REPLICAS,
    NAMESPACE,
    RELEASE,
    STDIO_SERVER,
    Release,
    running_load,
    wait_until,
)
from tests.support.node import Node

# The first test may wait for the background build of the node and the images.
pytestmark = [pytest.mark.late_tools, pytest.mark.timeout(3600)]

TOOLS_NAMESPACE = "pod-tools"
CLIENT = {"name": "t", "version": "1"}
INITIALIZE = rpc("initialize", {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": CLIENT})
TENANT = "pods"


def test_operator_and_gateway_pods_are_ready_under_the_charts_security_settings(release: Release) -> None:
    pods = release.pods(NAMESPACE)
    components = {p.metadata.labels.get("app.kubernetes.io/component") for p in pods}
    assert {"gateway", "operator"} <= components, components
    for pod in pods:
        assert pod.status.phase == "Running", release.describe(NAMESPACE)
        assert all(s.ready for s in pod.status.container_statuses), release.describe(NAMESPACE)
        # The chart's settings reached the node unchanged.
        assert pod.spec.security_context.run_as_non_root is True
        assert pod.spec.security_context.seccomp_profile.type == "RuntimeDefault"
        for container in pod.spec.containers:
            context = container.security_context
            assert context.read_only_root_filesystem is True and context.allow_privilege_escalation is False
            assert context.capabilities.drop == ["ALL"]
    # ...and the kernel enforces them: the containers' processes run as uid 10001, with no
    # capabilities, no new privileges and a seccomp filter (read from /proc on the host).
    for pod in pods:
        for container in pod.status.container_statuses:
            status = process_status(release.node, container.container_id)
            assert status["Uid"].split()[:2] == ["10001", "10001"], status
            assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0, status
            assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2", status


def process_status(node: Node, container_id: str) -> dict[str, str]:
    """/proc/<pid>/status of a container's main process (its pid from containerd)."""
    task = container_id.removeprefix("containerd://")
    rows = [line.split() for line in node.ctr("tasks", "list").stdout.splitlines()[1:]]
    pid = next(row[1] for row in rows if row[0] == task)
    text = Path(f"/proc/{pid}/status").read_text()
    return {key: value.strip() for key, value in (line.split(":", 1) for line in text.splitlines() if ":" in line)}


def test_gateway_answers_through_its_cluster_ip_and_helm_test_passes(release: Release) -> None:
    assert httpx.get(f"{release.gateway_url}/readyz", timeout=10).status_code == 200
    assert httpx.get(f"{release.gateway_url}/admin/v1/tenants", timeout=10).status_code == 401
    # The test pod resolves the Service by its DNS name (CoreDNS) from inside the cluster.
    result = helm("test", RELEASE, "--namespace", NAMESPACE, "--timeout", "3m", kubeconfig=str(release.node.kubeconfig))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def tools(release: Release) -> Iterator[str]:
    """Tenant + stdio Upstream + apiKey Profile; yields the profile's MCP URL once it is Ready."""
    dynamic = DynamicClient(release.api)
    core = k8s.CoreV1Api(release.api)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=TOOLS_NAMESPACE)))
    tenants = dynamic.resources.get(api_version=API, kind="Tenant")
    upstreams = dynamic.resources.get(api_version=API, kind="Upstream")
    profiles = dynamic.resources.get(api_version=API, kind="Profile")
    tenants.create(
        body={
            "apiVersion": API,
            "kind": "Tenant",
            "metadata": {"name": TENANT},
            "spec": {"namespaces": [TOOLS_NAMESPACE], "apiKeys": {"adminApi": True}},
        }
    )
    upstreams.create(
        namespace=TOOLS_NAMESPACE,
        body={
            "apiVersion": API,
            "kind": "Upstream",
            "metadata": {"name": "echo"},
            "spec": {"replicas": 1, "scope": "shared", "stdio": {"command": "python", "args": ["-c", STDIO_SERVER]}},
        },
    )
    profiles.create(
        namespace=TOOLS_NAMESPACE,
        body={
            "apiVersion": API,
            "kind": "Profile",
            "metadata": {"name": "pods-dev"},
            "spec": {"upstreams": [{"name": "echo"}], "auth": {"mode": "apiKey"}},
        },
    )

    def ready(kind: Any, name: str) -> Any:
        status = (kind.get(namespace=TOOLS_NAMESPACE, name=name).to_dict().get("status")) or {}
        conditions = {c["type"]: c for c in status.get("conditions", [])}
        return status if conditions.get("Ready", {}).get("status") == "True" else None

    def explain() -> str:
        upstream = upstreams.get(namespace=TOOLS_NAMESPACE, name="echo").to_dict().get("status")
        profile = profiles.get(namespace=TOOLS_NAMESPACE, name="pods-dev").to_dict().get("status")
        return f"upstream: {upstream}\nprofile: {profile}\n{release.describe(TOOLS_NAMESPACE)}"

    upstream = wait_until(lambda: ready(upstreams, "echo"), "Upstream echo Ready", explain=explain)
    assert upstream["toolCount"] == 1, upstream
    wait_until(lambda: ready(profiles, "pods-dev"), "Profile pods-dev Ready", explain=explain)
    yield f"{release.gateway_url}/pods-dev/mcp"
    core.delete_namespace(TOOLS_NAMESPACE)
    tenants.delete(name=TENANT)


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_mcp_client_on_the_host_calls_a_stdio_tool_in_an_adapter_pod(
    release: Release, tools: str, mode: str
) -> None:
    _, headers = release.mint_key(TENANT, f"host-{mode}")
    async with mcp_client(tools, headers, mode=mode) as client:
        listed = await client.list_tools()
        names = [tool.name for tool in listed.tools]
        assert len(names) == 1 and names[0].endswith("echo"), names
        result = await client.call_tool(names[0], {"text": f"hello from the host ({mode})"})
    assert not result.is_error, result
    text = result.content[0]
    assert isinstance(text, TextContent)
    # Served by the adapter pod (its host name is the pod's name), not by anything on the host.
    adapter_pods = [p.metadata.name for p in release.pods(TOOLS_NAMESPACE)]
    host, echoed = text.text.split(": ", 1)
    assert host in adapter_pods and echoed == f"hello from the host ({mode})"


async def test_two_gateway_replicas_share_keys_and_sessions_through_postgresql(release: Release, tools: str) -> None:
    replicas = release.gateway_pod_urls()
    assert len(replicas) == GATEWAY_REPLICAS, release.describe(NAMESPACE)
    first, second = (f"{url}/pods-dev/mcp" for url in replicas)
    key_id, headers = release.mint_key(TENANT, "replicas", base_url=replicas[0])
    # A key minted on one replica serves on the other (kept in memory, it would get 401 there).
    async with mcp_client(second, headers, mode=MODERN) as client:
        name = (await client.list_tools()).tools[0].name
        result = await client.call_tool(name, {"text": "via the second replica"})
    assert not result.is_error, result
    # A handshake session opened on one replica continues on the other.
    session = open_session(first, headers)
    assert session_ping(second, session, headers).status_code == 200
    # Revoked through the second replica: the first refuses the key at once.
    revoked = httpx.delete(f"{replicas[1]}/admin/v1/keys/{key_id}", headers=release.admin_headers, timeout=10)
    assert revoked.status_code == 200, revoked.text
    accept = {"Accept": "application/json, text/event-stream"}
    refused = httpx.post(first, json=INITIALIZE, headers={**accept, **headers}, timeout=10)
    assert refused.status_code == 401 and "revoked" in refused.text, refused.text


async def test_a_deleted_adapter_pod_is_replaced_and_calls_recover(release: Release, tools: str) -> None:
    _, headers = release.mint_key(TENANT, "faults")
    core = k8s.CoreV1Api(release.api)
    before = [p.metadata.name for p in release.pods(TOOLS_NAMESPACE)]
    assert len(before) == 1, before
    core.delete_namespaced_pod(before[0], TOOLS_NAMESPACE, grace_period_seconds=0)
    # Calls fail cleanly (a tool error or a JSON-RPC error, never a hang) until the Deployment's
    # new pod serves; then the answer names the new pod.
    deadline = time.monotonic() + 180
    failures: list[str] = []
    while True:
        try:
            async with mcp_client(tools, headers, mode=MODERN) as client:
                name = (await client.list_tools()).tools[0].name
                result = await asyncio.wait_for(client.call_tool(name, {"text": "again"}), timeout=60)
            content = result.content[0]
            if not result.is_error and isinstance(content, TextContent):
                host = content.text.split(": ", 1)[0]
                if host not in before:
                    break
            else:
                failures.append(str(result.content))
        except Exception as exc:  # the SDK raises McpError for a JSON-RPC error answer
            failures.append(repr(exc))
        assert time.monotonic() < deadline, f"no answer from a new adapter pod; failures: {failures[-3:]}"
        await asyncio.sleep(2)
    assert host in [p.metadata.name for p in release.pods(TOOLS_NAMESPACE)]


# --- faults under a bounded client load (tests/pods/support.py Load) ----------------------------


async def echo_tool(url: str, headers: dict[str, str]) -> str:
    async with mcp_client(url, headers, mode=MODERN) as client:
        return next(tool.name for tool in (await client.list_tools()).tools if tool.name.endswith("echo"))


def gateway_rolled(release: Release, gone: set[str]) -> bool:
    """Both replicas Ready again, none of them one of `gone`."""
    deployment = k8s.AppsV1Api(release.api).read_namespaced_deployment(f"{RELEASE}-gateway", NAMESPACE)
    pods = {p.metadata.name for p in release.pods(NAMESPACE, "app.kubernetes.io/component=gateway")}
    status = deployment.status
    return (
        status.observed_generation == deployment.metadata.generation
        and status.ready_replicas == status.updated_replicas == status.replicas == GATEWAY_REPLICAS
        and len(release.gateway_pod_urls()) == GATEWAY_REPLICAS
        and not pods & gone
    )


def gateway_pods(release: Release) -> set[str]:
    return {p.metadata.name for p in release.pods(NAMESPACE, "app.kubernetes.io/component=gateway")}


async def test_losing_a_gateway_pod_under_load_fails_no_call(release: Release, tools: str) -> None:
    _, headers = release.mint_key(TENANT, "load-pod-loss")
    victim = sorted(gateway_pods(release))[0]
    async with running_load(tools, headers, await echo_tool(tools, headers)) as load:
        # Deleted the way a node drain or an eviction does it: with the pod's grace period.
        k8s.CoreV1Api(release.api).delete_namespaced_pod(victim, NAMESPACE)
        explain = lambda: release.describe(NAMESPACE)  # noqa: E731
        await asyncio.to_thread(
            wait_until, lambda: gateway_rolled(release, {victim}), "a new gateway pod", 180, explain
        )
        await load.wait_for_calls(20)
    assert not load.wrong, load.wrong
    assert not load.failures, f"{len(load.failures)} failed of {load.ok + len(load.failures)}: {load.failures[:5]}"


def resource_versions(release: Release) -> dict[str, str]:
    """What the operator owns or writes: the routing ConfigMap, the CRs' status, the adapter's workload."""
    core, apps = k8s.CoreV1Api(release.api), k8s.AppsV1Api(release.api)
    dynamic = DynamicClient(release.api)
    versions = {"configmap/routing": core.read_namespaced_config_map(f"{RELEASE}-routing", NAMESPACE).metadata}
    versions["tenant"] = dynamic.resources.get(api_version=API, kind="Tenant").get(name=TENANT).metadata
    for kind in ("Upstream", "Profile"):
        for item in dynamic.resources.get(api_version=API, kind=kind).get(namespace=TOOLS_NAMESPACE).items:
            versions[f"{kind}/{item.metadata.name}"] = item.metadata
    for deployment in apps.list_namespaced_deployment(TOOLS_NAMESPACE).items:
        versions[f"deployment/{deployment.metadata.name}"] = deployment.metadata
    for service in core.list_namespaced_service(TOOLS_NAMESPACE).items:
        versions[f"service/{service.metadata.name}"] = service.metadata
    return {name: getattr(meta, "resource_version", None) or meta.resourceVersion for name, meta in versions.items()}


def operator_metrics(release: Release, exclude: str) -> dict[str, float]:
    """The new operator pod's counters (its health port, from the host on the pods' bridge)."""
    pods = [p for p in release.pods(NAMESPACE, "app.kubernetes.io/component=operator") if p.metadata.name != exclude]
    ready = [p for p in pods if p.status.pod_ip and all(s.ready for s in p.status.container_statuses or [False])]
    if not ready:
        return {}
    try:
        text = httpx.get(f"http://{ready[0].status.pod_ip}:8081/metrics", timeout=5).text
    except httpx.HTTPError:
        return {}
    return {
        line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line.startswith("mcp_operator_")
    }


async def test_an_operator_restart_under_load_rewrites_nothing_and_fails_no_call(release: Release, tools: str) -> None:
    _, headers = release.mint_key(TENANT, "load-operator")
    before = resource_versions(release)
    operator = release.pods(NAMESPACE, "app.kubernetes.io/component=operator")[0].metadata.name
    async with running_load(tools, headers, await echo_tool(tools, headers)) as load:
        k8s.CoreV1Api(release.api).delete_namespaced_pod(operator, NAMESPACE)

        def reconciled() -> bool:
            # The new operator has rendered the routing and reconciled the upstream at least once.
            metrics = operator_metrics(release, exclude=operator)
            return (
                metrics.get("mcp_operator_routing_last_success_timestamp_seconds", 0) > 0
                and metrics.get('mcp_operator_reconciles_total{controller="upstream"}', 0) >= 1
            )

        explain = lambda: release.describe(NAMESPACE)  # noqa: E731
        await asyncio.to_thread(wait_until, reconciled, "the new operator reconciled", 180, explain)
        await load.wait_for_calls(20)
    assert not load.wrong and not load.failures, (load.wrong, load.failures[:5])
    # Nothing the operator owns was written again: a restart is not a change.
    after = resource_versions(release)
    assert after == before, {name: (before.get(name), after.get(name)) for name in before.keys() | after.keys()}


async def test_a_helm_upgrade_under_load_fails_no_call(release: Release, tools: str) -> None:
    _, headers = release.mint_key(TENANT, "load-upgrade")
    old = gateway_pods(release)
    async with running_load(tools, headers, await echo_tool(tools, headers)) as load:
        # A gateway setting: the Deployment's pod template changes, so both replicas are replaced.
        upgrade = await asyncio.to_thread(
            helm, "upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE, "--reuse-values",
            "--set", "gateway.accessLog=true", "--wait", "--timeout", "4m",
            kubeconfig=str(release.node.kubeconfig), timeout=300,
        )  # fmt: skip
        assert upgrade.returncode == 0, upgrade.stderr
        explain = lambda: release.describe(NAMESPACE)  # noqa: E731
        await asyncio.to_thread(wait_until, lambda: gateway_rolled(release, old), "the upgraded gateways", 180, explain)
        await load.wait_for_calls(20)
    assert not load.wrong, load.wrong
    assert not load.failures, f"{len(load.failures)} failed of {load.ok + len(load.failures)}: {load.failures[:5]}"


async def test_a_deleted_profile_answers_404_while_the_others_keep_serving(release: Release, tools: str) -> None:
    dynamic = DynamicClient(release.api)
    profiles = dynamic.resources.get(api_version=API, kind="Profile")
    body = {"upstreams": [{"name": "echo"}], "auth": {"mode": "apiKey"}}
    profiles.create(
        namespace=TOOLS_NAMESPACE,
        body={"apiVersion": API, "kind": "Profile", "metadata": {"name": "pods-extra"}, "spec": body},
    )
    _, headers = release.mint_key(TENANT, "load-profile-delete")
    extra = [f"{url}/pods-extra/mcp" for url in release.gateway_pod_urls()]
    accept = {"Accept": "application/json, text/event-stream", **headers}

    def answers(status: int) -> bool:
        return all(httpx.post(url, json=INITIALIZE, headers=accept, timeout=10).status_code == status for url in extra)

    await asyncio.to_thread(wait_until, lambda: answers(200), "pods-extra served by both replicas")
    async with running_load(tools, headers, await echo_tool(tools, headers)) as load:
        profiles.delete(namespace=TOOLS_NAMESPACE, name="pods-extra")
        await asyncio.to_thread(wait_until, lambda: answers(404), "pods-extra answering 404 on both replicas", 60)
        await load.wait_for_calls(20)
    gone = httpx.post(extra[0], json=INITIALIZE, headers=accept, timeout=10)
    assert gone.status_code == 404 and "pods-extra" in gone.text and "Traceback" not in gone.text, gone.text
    assert not load.wrong and not load.failures, (load.wrong, load.failures[:5])
