"""The adapter NetworkPolicy, enforced on the real node (its policy agent: tests/support/node.py).

An adapter holds its tenant's upstream credentials and has no auth of its own: the operator's
NetworkPolicy lets only the gateway and the operator reach it. Here a pod in the adapter's own
namespace, outside that set, cannot connect to the adapter's port (by pod IP or through its
Service), while the gateway still calls the adapter for an MCP client. The controls that keep
the test honest: the same prober connects to a gateway pod on the same port number (its policy
admits everyone), and a connection from inside a gateway pod to the adapter pod succeeds.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient
from mcp_types import TextContent

from tests.gateway.support import MODERN, mcp_client
from tests.pods.support import API, NAMESPACE, STDIO_SERVER, Release, wait_until

# The first test may wait for the background build of the node and the images (run alone).
pytestmark = [pytest.mark.late_tools, pytest.mark.timeout(3600)]

POLICY_NAMESPACE = "pod-netpol"
TENANT = "netpol"
UPSTREAM = "guarded"
PROFILE = "netpol-dev"
ADAPTER_PORT = 8080  # the adapter's one port (operator naming.ADAPTER_PORT); the gateway's is 8080 too
CONNECT_TIMEOUT = 3  # seconds: a dropped SYN is only retried, so an attempt ends by this bound
# Run inside a pod's container: connect to argv[1]:argv[2]; exit 0 when connected, else print why.
CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
except OSError as exc:
    print(f"{type(exc).__name__}: {exc}")
    sys.exit(1)
print("connected")
"""


@dataclass
class Guarded:
    url: str  # the profile's MCP endpoint through the gateway Service
    adapter_ip: str
    service_ip: str
    prober: str  # container id of the prober pod (adapter namespace, not in the allowed set)


def ready_status(kind: Any, name: str) -> Any:
    status = (kind.get(namespace=POLICY_NAMESPACE, name=name).to_dict().get("status")) or {}
    conditions = {c["type"]: c for c in status.get("conditions", [])}
    return status if conditions.get("Ready", {}).get("status") == "True" else None


def create_prober(core: k8s.CoreV1Api, image: str) -> None:
    """A pod that only sleeps, in the adapter's namespace, labelled like nothing the policy admits."""
    container = k8s.V1Container(
        name="prober",
        image=image,
        image_pull_policy="Never",
        command=["python", "-c", "import time; time.sleep(3600)"],
        security_context=k8s.V1SecurityContext(
            run_as_non_root=True,
            run_as_user=10001,
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            capabilities=k8s.V1Capabilities(drop=["ALL"]),
        ),
    )
    pod = k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="prober", labels={"app": "prober"}),
        spec=k8s.V1PodSpec(containers=[container], termination_grace_period_seconds=0),
    )
    core.create_namespaced_pod(POLICY_NAMESPACE, pod)


@pytest.fixture(scope="module")
def guarded(release: Release) -> Iterator[Guarded]:
    """Tenant + stdio Upstream (its adapter and NetworkPolicy made by the operator) + Profile, and the prober."""
    dynamic = DynamicClient(release.api)
    core = k8s.CoreV1Api(release.api)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=POLICY_NAMESPACE)))
    tenants = dynamic.resources.get(api_version=API, kind="Tenant")
    upstreams = dynamic.resources.get(api_version=API, kind="Upstream")
    profiles = dynamic.resources.get(api_version=API, kind="Profile")
    tenants.create(
        body={
            "apiVersion": API,
            "kind": "Tenant",
            "metadata": {"name": TENANT},
            "spec": {"namespaces": [POLICY_NAMESPACE], "apiKeys": {"adminApi": True}},
        }
    )
    stdio = {"command": "python", "args": ["-c", STDIO_SERVER]}
    upstreams.create(
        namespace=POLICY_NAMESPACE,
        body={
            "apiVersion": API,
            "kind": "Upstream",
            "metadata": {"name": UPSTREAM},
            "spec": {"replicas": 1, "scope": "shared", "stdio": stdio},
        },
    )
    profiles.create(
        namespace=POLICY_NAMESPACE,
        body={
            "apiVersion": API,
            "kind": "Profile",
            "metadata": {"name": PROFILE},
            "spec": {"upstreams": [{"name": UPSTREAM}], "auth": {"mode": "apiKey"}},
        },
    )
    explain = lambda: release.describe(POLICY_NAMESPACE)  # noqa: E731
    wait_until(lambda: ready_status(upstreams, UPSTREAM), f"Upstream {UPSTREAM} Ready", explain=explain)
    wait_until(lambda: ready_status(profiles, PROFILE), f"Profile {PROFILE} Ready", explain=explain)
    adapter = one_ready_pod(release, POLICY_NAMESPACE, f"mcpgateway.dev/upstream={UPSTREAM}")
    create_prober(core, adapter.spec.containers[0].image)
    prober = wait_until(
        lambda: one_ready_pod(release, POLICY_NAMESPACE, "app=prober", required=False), "prober pod Ready", 60, explain
    )
    service = next(iter(core.list_namespaced_service(POLICY_NAMESPACE).items))
    yield Guarded(
        url=f"{release.gateway_url}/{PROFILE}/mcp",
        adapter_ip=adapter.status.pod_ip,
        service_ip=service.spec.cluster_ip,
        prober=container_id(prober),
    )
    core.delete_namespace(POLICY_NAMESPACE)
    tenants.delete(name=TENANT)


def one_ready_pod(release: Release, namespace: str, selector: str, required: bool = True) -> Any:
    pods = [
        p
        for p in release.pods(namespace, selector)
        if p.status.pod_ip and p.status.container_statuses and all(s.ready for s in p.status.container_statuses)
    ]
    assert pods or not required, f"no Ready pod {selector} in {namespace}\n{release.describe(namespace)}"
    return pods[0] if pods else None


def container_id(pod: Any) -> str:
    return str(pod.status.container_statuses[0].container_id).removeprefix("containerd://")


def connect_from(release: Release, container: str, host: str, port: int) -> tuple[bool, str]:
    """(connected, what the attempt printed): a TCP connect run inside `container`'s pod (its
    own network namespace, user and policy labels), through containerd, bounded by CONNECT_TIMEOUT."""
    exec_id = f"netpol-{uuid.uuid4().hex[:8]}"
    args = ["tasks", "exec", "--exec-id", exec_id, container, "python", "-c", CONNECT, host, str(port)]
    done = release.node.ctr(*args, str(CONNECT_TIMEOUT), check=False, timeout=CONNECT_TIMEOUT + 30)
    return done.returncode == 0, (done.stdout + done.stderr).strip()


def test_the_adapter_has_the_operators_network_policy(release: Release, guarded: Guarded) -> None:
    policies = k8s.NetworkingV1Api(release.api).list_namespaced_network_policy(POLICY_NAMESPACE).items
    assert len(policies) == 1, policies
    spec = policies[0].spec
    assert spec.policy_types == ["Ingress"] and spec.pod_selector.match_labels["mcpgateway.dev/upstream"] == UPSTREAM
    admitted = {peer.namespace_selector.match_labels["kubernetes.io/metadata.name"] for peer in spec.ingress[0]._from}
    assert admitted == {NAMESPACE}, spec.ingress  # the release's gateway and operator pods only


def test_a_pod_outside_the_allowed_set_cannot_reach_the_adapter(release: Release, guarded: Guarded) -> None:
    # Control: the prober's network works, on the same port number, to a pod whose policy admits it.
    gateway = one_ready_pod(release, NAMESPACE, "app.kubernetes.io/component=gateway")
    reached, said = connect_from(release, guarded.prober, gateway.status.pod_ip, 8080)
    assert reached, f"the prober cannot reach a gateway pod: {said}"
    # The adapter drops it, by pod IP and through its Service: the SYN is never answered.
    for target in (guarded.adapter_ip, guarded.service_ip):
        reached, said = connect_from(release, guarded.prober, target, ADAPTER_PORT)
        assert not reached and "timed out" in said, f"{target}:{ADAPTER_PORT} from the prober: {said}"


async def test_the_gateway_still_reaches_the_adapter_and_its_tool_answers(release: Release, guarded: Guarded) -> None:
    # Control: the same address and port, from inside a gateway pod (in the allowed set).
    gateway = one_ready_pod(release, NAMESPACE, "app.kubernetes.io/component=gateway")
    reached, said = connect_from(release, container_id(gateway), guarded.adapter_ip, ADAPTER_PORT)
    assert reached, f"a gateway pod cannot reach the adapter: {said}"
    # And a real MCP call: a client on the host, through the gateway's Service, to the adapter's tool.
    _, headers = release.mint_key(TENANT, "netpol")
    async with mcp_client(guarded.url, headers, mode=MODERN) as client:
        name = next(t.name for t in (await client.list_tools()).tools if t.name.endswith("echo"))
        result = await client.call_tool(name, {"text": "behind the policy"})
    assert not result.is_error, result
    content = result.content[0]
    assert isinstance(content, TextContent) and content.text.endswith(": behind the policy"), content
