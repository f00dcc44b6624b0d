"""The chart on a real node (tests/support/node.py): `helm install` with the locally built
images brings the operator and gateway pods to Ready under the chart's own security
settings; an Upstream becomes an adapter pod running a stdio MCP server; an MCP client on
the host calls its tool through the gateway's ClusterIP Service (kube-proxy's rules), the
gateway reaching the adapter by its Service DNS name (CoreDNS).

PostgreSQL: none. The gateway keeps keys in memory with one replica (values.yaml), which is
what this install uses; the machine's PostgreSQL listens on loopback, which pods cannot reach.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient
from mcp_types import TextContent

from tests.chart.support import CHART, VALUES_KIND, helm
from tests.gateway.support import MODERN, mcp_client
from tests.support.node import Node

# The first test may wait for the background build of the node and the images.
pytestmark = [pytest.mark.late_tools, pytest.mark.timeout(3600)]

RELEASE = "mcp-gateway"  # the chart's fullname is then the release name
NAMESPACE = "mcp-system"
TOOLS_NAMESPACE = "pod-tools"
TENANT = "pods"
API = "mcpgateway.dev/v1alpha1"
# A stdio MCP server run by the adapter image's own Python and MCP SDK: no registry at pod start.
STDIO_SERVER = """
import socket
from mcp.server.mcpserver import MCPServer

mcp = MCPServer("pod-tools")


@mcp.tool(description="Echo the text back with the name of the pod that served it")
def echo(text: str) -> str:
    return f"{socket.gethostname()}: {text}"


mcp.run("stdio")
"""


def wait_until(check: Callable[[], Any], what: str, timeout: float = 180, explain: Callable[[], str] = str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout:.0f}s\n{explain()}")
        time.sleep(1)


@dataclass
class Release:
    node: Node
    api: Any
    gateway_url: str  # http://<ClusterIP>:<port> of the gateway Service
    admin_token: str
    install_seconds: float

    def pods(self, namespace: str, selector: str = "") -> list[Any]:
        return list(k8s.CoreV1Api(self.api).list_namespaced_pod(namespace, label_selector=selector).items)

    def describe(self, namespace: str) -> str:
        lines = []
        for pod in self.pods(namespace):
            statuses = pod.status.container_statuses or []
            lines.append(f"{pod.metadata.name}: {pod.status.phase} {[(s.name, s.ready, s.state) for s in statuses]}")
            lines.append(self.node.pod_logs(namespace, pod.metadata.name))
        return "\n".join(lines)


@pytest.fixture(scope="module")
def release(node: Node) -> Iterator[Release]:
    started = time.monotonic()
    install = helm(
        "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--create-namespace",
        "--values", str(VALUES_KIND),
        "--set", "gateway.service.type=ClusterIP", "--set", "gateway.service.nodePort=null",
        "--wait", "--timeout", "4m",
        kubeconfig=str(node.kubeconfig), timeout=400,
    )  # fmt: skip
    with node.api_client() as api:
        core = k8s.CoreV1Api(api)
        if install.returncode != 0:
            logs = [node.pod_logs(NAMESPACE, p.metadata.name) for p in core.list_namespaced_pod(NAMESPACE).items]
            pytest.fail(f"helm install failed: {install.stderr}\n" + "\n".join(logs))
        service = core.read_namespaced_service(f"{RELEASE}-gateway", NAMESPACE)
        port = service.spec.ports[0].port
        secret = core.read_namespaced_secret(f"{RELEASE}-gateway", NAMESPACE)
        token = base64.b64decode(secret.data["admin-token"]).decode()
        yield Release(node, api, f"http://{service.spec.cluster_ip}:{port}", token, time.monotonic() - started)
    helm("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", kubeconfig=str(node.kubeconfig), timeout=300)


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


def mint_key(release: Release, name: str) -> dict[str, str]:
    """An API key of the tenant, minted through the admin API via the gateway's ClusterIP."""
    minted = httpx.post(
        f"{release.gateway_url}/admin/v1/tenants/{TENANT}/keys",
        json={"name": name},
        headers={"Authorization": f"Bearer {release.admin_token}"},
        timeout=10,
    )
    assert minted.status_code == 201, minted.text
    return {"Authorization": f"Bearer {minted.json()['key']}"}


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_mcp_client_on_the_host_calls_a_stdio_tool_in_an_adapter_pod(
    release: Release, tools: str, mode: str
) -> None:
    headers = mint_key(release, f"host-{mode}")
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


async def test_a_deleted_adapter_pod_is_replaced_and_calls_recover(release: Release, tools: str) -> None:
    headers = mint_key(release, "faults")
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


def test_helm_uninstall_leaves_only_what_the_chart_readme_keeps(release: Release) -> None:
    result = helm("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", kubeconfig=str(release.node.kubeconfig))
    assert result.returncode == 0, result.stderr
    core = k8s.CoreV1Api(release.api)
    apps = k8s.AppsV1Api(release.api)
    coordination = k8s.CoordinationV1Api(release.api)
    rbac = k8s.RbacAuthorizationV1Api(release.api)

    def leftovers() -> list[str]:
        found = [f"pod/{p.metadata.name}" for p in release.pods(NAMESPACE)]
        found += [f"deployment/{d.metadata.name}" for d in apps.list_namespaced_deployment(NAMESPACE).items]
        found += [f"service/{s.metadata.name}" for s in core.list_namespaced_service(NAMESPACE).items]
        found += [f"lease/{lease.metadata.name}" for lease in coordination.list_namespaced_lease(NAMESPACE).items]
        found += [
            f"configmap/{c.metadata.name}"
            for c in core.list_namespaced_config_map(NAMESPACE).items
            if c.metadata.name != "kube-root-ca.crt"
        ]
        found += [
            f"serviceaccount/{a.metadata.name}"
            for a in core.list_namespaced_service_account(NAMESPACE).items
            if a.metadata.name != "default"
        ]
        found += [f"secret/{s.metadata.name}" for s in core.list_namespaced_secret(NAMESPACE).items]
        found += [f"role/{r.metadata.name}" for r in rbac.list_namespaced_role(NAMESPACE).items]
        found += [f"rolebinding/{r.metadata.name}" for r in rbac.list_namespaced_role_binding(NAMESPACE).items]
        selector = f"app.kubernetes.io/instance={RELEASE}"
        found += [f"clusterrole/{r.metadata.name}" for r in rbac.list_cluster_role(label_selector=selector).items]
        found += [
            f"clusterrolebinding/{r.metadata.name}"
            for r in rbac.list_cluster_role_binding(label_selector=selector).items
        ]
        return sorted(found)

    kept = [f"secret/{RELEASE}-gateway"]  # charts/mcp-gateway/README.md "Uninstall"
    what = "only the kept Secret left after helm uninstall"
    wait_until(lambda: leftovers() == kept, what, explain=lambda: str(leftovers()))
