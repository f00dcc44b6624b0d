"""The installed chart, run for real: `helm install` on the real API server, then the
operator and gateway processes started with exactly the arguments and environment of
the installed Deployments and the credentials of the chart's own ServiceAccounts.

There is no kubelet, so the two run as local processes (the same console scripts the
images start) with a kubeconfig holding their ServiceAccount's token. This proves the
chart's wiring end to end: operator flags, least-privilege RBAC, the routing ConfigMap
name both sides agree on, the generated admin token and pepper.
"""

from __future__ import annotations

import base64
import contextlib
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from tests.chart.support import CHART, helm
from tests.support.kube import ControlPlane, write_kubeconfig
from tests.support.processes import ManagedProcess, free_port

BIN = Path(sys.executable).parent
RELEASE = "run"


def service_account_kubeconfig(kube: ControlPlane, api: Any, namespace: str, account: str, workdir: Path) -> Path:
    request = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
    answer: Any = k8s.CoreV1Api(api).create_namespaced_service_account_token(account, namespace, request)
    return write_kubeconfig(workdir / f"{account}.kubeconfig", kube.server, answer.status.token, user=account)


def container(api: Any, namespace: str, name: str) -> Any:
    deployment: Any = k8s.AppsV1Api(api).read_namespaced_deployment(name, namespace)
    return deployment.spec.template.spec.containers[0]


def resolved_env(api: Any, namespace: str, spec: Any) -> dict[str, str]:
    """What the kubelet would put in the container's environment from its env list."""
    core = k8s.CoreV1Api(api)
    env = {}
    for item in spec.env or []:
        if item.value_from is None:
            env[item.name] = item.value or ""
            continue
        ref = item.value_from.secret_key_ref
        secret: Any = core.read_namespaced_secret(ref.name, namespace)
        env[item.name] = base64.b64decode(secret.data[ref.key]).decode()
    return env


def replace_flag(args: list[str], flag: str, value: str) -> list[str]:
    assert any(a.startswith(f"{flag}=") for a in args), f"{flag} missing from {args}"
    return [f"{flag}={value}" if a.startswith(f"{flag}=") else a for a in args]


def wait_until(check: Callable[[], bool], what: str, timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.25)


def wait_for_policy(api: Any, namespace: str, name: str, timeout: float = 45.0) -> Any:
    networking = k8s.NetworkingV1Api(api)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return networking.read_namespaced_network_policy(name, namespace)
        except ApiException as exc:
            assert exc.status == 404 and time.monotonic() < deadline, f"no NetworkPolicy {namespace}/{name}: {exc}"
        time.sleep(0.25)


def test_installed_operator_and_gateway_work_with_the_charts_wiring(
    kube: ControlPlane, spawn: Callable[..., ManagedProcess]
) -> None:
    namespace = kube.namespace("chart-run")
    workdir = Path(tempfile.mkdtemp(prefix="mcp-chart-run-"))
    install = helm(
        "install", RELEASE, str(CHART), "--namespace", namespace,
        "--set", f"operator.watchNamespaces={{{namespace}}}",
        kubeconfig=str(kube.kubeconfig),
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    tenant = f"run-{uuid.uuid4().hex[:6]}"
    with kube.api_client() as api:
        tenants = DynamicClient(api).resources.get(api_version="mcpgateway.dev/v1alpha1", kind="Tenant")
        try:
            # Operator: the installed Deployment's args, its ServiceAccount's token.
            operator = container(api, namespace, f"{RELEASE}-mcp-gateway-operator")
            health_port = free_port()
            operator_args = replace_flag(list(operator.args), "--health-port", str(health_port))
            operator_kubeconfig = service_account_kubeconfig(
                kube, api, namespace, f"{RELEASE}-mcp-gateway-operator", workdir
            )
            operator_process = spawn(
                [str(BIN / "mcp-operator"), *operator_args, "--kubeconfig", str(operator_kubeconfig)],
                name="chart-operator",
                ready_url=f"http://127.0.0.1:{health_port}/healthz",
                timeout=60,
            )
            routing = f"{RELEASE}-mcp-gateway-routing"
            core = k8s.CoreV1Api(api)

            def routing_rendered() -> bool:
                items: list[Any] = core.list_namespaced_config_map(namespace).items
                return routing in [c.metadata.name for c in items]

            wait_until(routing_rendered, f"the operator to render ConfigMap {namespace}/{routing}")
            # Owned by the operator's Deployment (--owner-deployment), so helm uninstall collects it.
            owners = core.read_namespaced_config_map(routing, namespace).metadata.owner_references or []
            assert [(o.kind, o.name) for o in owners] == [("Deployment", f"{RELEASE}-mcp-gateway-operator")]

            # Gateway: the installed Deployment's args and env (admin token, pepper from the generated Secret).
            gateway = container(api, namespace, f"{RELEASE}-mcp-gateway-gateway")
            port = free_port()
            metrics_port = free_port()
            gateway_args = replace_flag(replace_flag(list(gateway.args), "--host", "127.0.0.1"), "--port", str(port))
            gateway_args = replace_flag(gateway_args, "--metrics-port", str(metrics_port))
            assert f"--routing-configmap={namespace}/{routing}" in gateway_args
            gateway_kubeconfig = service_account_kubeconfig(
                kube, api, namespace, f"{RELEASE}-mcp-gateway-gateway", workdir
            )
            env = resolved_env(api, namespace, gateway)
            base = f"http://127.0.0.1:{port}"
            gateway_process = spawn(
                [str(BIN / "mcp-gateway"), *gateway_args, "--kubeconfig", str(gateway_kubeconfig)],
                name="chart-gateway",
                env=env,
                ready_url=f"{base}/readyz",
                timeout=60,
            )

            # What the `helm test` pod checks: healthy, and the admin API refuses anonymous calls.
            assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
            assert httpx.get(f"{base}/admin/v1/tenants", timeout=5).status_code == 401
            # /metrics lives on the metrics port only, never on the port the Ingress publishes.
            assert httpx.get(f"{base}/metrics", timeout=5).status_code == 404
            assert "mcp_gateway" in httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            admin = {"Authorization": f"Bearer {env['MCP_GATEWAY_ADMIN_TOKEN']}"}

            # A Tenant created through the API reaches the gateway: operator -> ConfigMap -> watch.
            tenants.create(
                body={
                    "apiVersion": "mcpgateway.dev/v1alpha1",
                    "kind": "Tenant",
                    "metadata": {"name": tenant},
                    "spec": {"namespaces": [namespace]},
                }
            )

            def tenant_served() -> bool:
                answer = httpx.get(f"{base}/admin/v1/tenants", headers=admin, timeout=5)
                assert answer.status_code == 200, answer.text
                return tenant in [t["id"] for t in answer.json()]

            wait_until(tenant_served, f"tenant {tenant} to appear in the gateway's admin API")

            # Each Upstream's adapter admits only this release's gateway and operator pods.
            upstreams = DynamicClient(api).resources.get(api_version="mcpgateway.dev/v1alpha1", kind="Upstream")
            upstreams.create(
                namespace=namespace,
                body={
                    "apiVersion": "mcpgateway.dev/v1alpha1",
                    "kind": "Upstream",
                    "metadata": {"name": "tools"},
                    "spec": {"mcp": {"url": "https://tools.example.com/mcp"}},
                },
            )
            policy = wait_for_policy(api, namespace, "tools-adapter")
            peers = policy.spec.ingress[0]._from
            for peer, component in zip(peers, ("gateway", "operator"), strict=True):
                assert peer.namespace_selector.match_labels == {"kubernetes.io/metadata.name": namespace}
                deployment: Any = k8s.AppsV1Api(api).read_namespaced_deployment(
                    f"{RELEASE}-mcp-gateway-{component}", namespace
                )
                pod_labels = deployment.spec.template.metadata.labels
                assert peer.pod_selector.match_labels.items() <= pod_labels.items(), component
            assert "Forbidden" not in operator_process.log_text(), "the chart's (namespaced) operator RBAC must suffice"
            logs = gateway_process.log_text()
            assert env["MCP_GATEWAY_ADMIN_TOKEN"] not in logs and env["MCP_GATEWAY_KEY_PEPPER"] not in logs
        finally:
            with contextlib.suppress(ApiException):  # not created when an earlier step failed
                tenants.delete(name=tenant)
