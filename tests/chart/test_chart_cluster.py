"""The chart against the real kube-apiserver (the `kube` fixture): every rendered
object passes the server's own validation (server-side dry-run), and a real
`helm install`/`upgrade`/`uninstall` behaves as NOTES.txt and values.yaml promise.

HTTPRoute and ServiceMonitor are validated against STAND-IN CRDs
(tests/chart/standin-crds/): structural subsets of the upstream schemas, because
the real Gateway API and Prometheus Operator CRDs cannot be downloaded here.
"""

from __future__ import annotations

import base64
import contextlib
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.chart.support import (
    CHART,
    STANDIN_CRDS,
    VALUES_FULL,
    VALUES_KIND,
    create_all,
    helm,
    install_crds,
    one,
    render,
)
from tests.support.kube import ControlPlane


@pytest.fixture(scope="module")
def api(kube: ControlPlane) -> Any:
    with kube.api_client() as client:
        install_crds(client, sorted(STANDIN_CRDS.glob("*.yaml")))
        yield client


def wait_default_service_account(api: Any, namespace: str, timeout: float = 30) -> None:
    """Pods need the namespace's `default` ServiceAccount, which a controller creates shortly after the namespace."""
    core = k8s.CoreV1Api(api)
    deadline = time.monotonic() + timeout
    while not core.list_namespaced_service_account(namespace, field_selector="metadata.name=default").items:
        assert time.monotonic() < deadline, f"no default ServiceAccount in {namespace} after {timeout}s"
        time.sleep(0.2)


def ensure_namespaces(api: Any, names: set[str]) -> None:
    core = k8s.CoreV1Api(api)
    existing = {n.metadata.name for n in core.list_namespace().items}
    for name in sorted(names - existing):
        with contextlib.suppress(ApiException):  # created meanwhile by a parallel test: fine
            core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))


@pytest.mark.parametrize("values", [(), (VALUES_FULL,), (VALUES_KIND,)], ids=["default", "full", "kind"])
def test_every_rendered_object_passes_server_side_dry_run(
    kube: ControlPlane, api: Any, values: tuple[Path, ...]
) -> None:
    namespace = kube.namespace("chart-dry")
    wait_default_service_account(api, namespace)
    docs = render(*values, namespace=namespace, release="mcp")
    assert len(docs) >= 12
    ensure_namespaces(api, {d["metadata"].get("namespace", namespace) for d in docs})  # watched ones must exist
    errors = create_all(api, docs, namespace, dry_run=True)
    assert not errors, "the API server refused:\n" + "\n".join(errors)


def test_dry_run_really_validates(kube: ControlPlane, api: Any) -> None:
    """Guard against a vacuous check: a broken object is refused by the same path."""
    namespace = kube.namespace("chart-dry")
    docs = render(VALUES_FULL, namespace=namespace, release="mcp")
    route = one(docs, "HTTPRoute")
    route["spec"]["rules"][0]["timeouts"]["request"] = "one hour"
    deployment = one(docs, "Deployment", "-gateway")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]["drop"] = "ALL"
    errors = create_all(api, [route, deployment], namespace, dry_run=True)
    assert len(errors) == 2, errors
    assert "HTTPRoute" in errors[0] and "timeouts.request" in errors[0]
    assert "Deployment" in errors[1] and "capabilities.drop" in errors[1]


def kubectl_secret(api: Any, namespace: str, name: str) -> dict[str, str]:
    secret = k8s.CoreV1Api(api).read_namespaced_secret(name, namespace)
    return {key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()}


def test_helm_install_upgrade_keeps_generated_secrets(kube: ControlPlane, api: Any) -> None:
    namespace = kube.namespace("chart-install")
    kubeconfig = str(kube.kubeconfig)
    install = helm("install", "mcp-gateway", str(CHART), "--namespace", namespace, kubeconfig=kubeconfig)
    assert install.returncode == 0, install.stderr
    # NOTES.txt tells how to reach the endpoint and mint a key, with this release's names.
    assert f"kubectl -n {namespace} port-forward svc/mcp-gateway-gateway 8080:80" in install.stdout
    assert "/admin/v1/tenants/" in install.stdout and "keys" in install.stdout

    apps = k8s.AppsV1Api(api)
    items: list[Any] = apps.list_namespaced_deployment(namespace).items
    deployments = {d.metadata.name: d for d in items}
    assert set(deployments) == {"mcp-gateway-gateway", "mcp-gateway-operator"}
    first = kubectl_secret(api, namespace, "mcp-gateway-gateway")
    assert len(first["admin-token"]) == 48 and len(first["api-key-pepper"]) == 64

    upgrade = helm(
        "upgrade",
        "mcp-gateway",
        str(CHART),
        "--namespace",
        namespace,
        "--set",
        "gateway.logLevel=debug",
        kubeconfig=kubeconfig,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    assert kubectl_secret(api, namespace, "mcp-gateway-gateway") == first, "upgrade must keep the generated secrets"
    gateway: Any = apps.read_namespaced_deployment("mcp-gateway-gateway", namespace)
    assert "--log-level=debug" in gateway.spec.template.spec.containers[0].args

    uninstall = helm("uninstall", "mcp-gateway", "--namespace", namespace, kubeconfig=kubeconfig)
    assert uninstall.returncode == 0, uninstall.stderr
    assert not apps.list_namespaced_deployment(namespace).items
    # Kept on uninstall: stored API key hashes in PostgreSQL outlive the release.
    assert kubectl_secret(api, namespace, "mcp-gateway-gateway") == first
    reinstall = helm("install", "mcp-gateway", str(CHART), "--namespace", namespace, kubeconfig=kubeconfig)
    assert reinstall.returncode == 0, reinstall.stderr
    assert kubectl_secret(api, namespace, "mcp-gateway-gateway") == first


def can(
    api: Any,
    user: str,
    verb: str,
    resource: str,
    *,
    group: str = "",
    namespace: str = "",
    name: str = "",
    subresource: str = "",
) -> bool:
    review = k8s.V1SubjectAccessReview(
        spec=k8s.V1SubjectAccessReviewSpec(
            user=user,
            groups=["system:serviceaccounts", "system:authenticated"],
            resource_attributes=k8s.V1ResourceAttributes(
                verb=verb,
                group=group,
                resource=resource,
                namespace=namespace or None,
                name=name or None,
                subresource=subresource or None,
            ),
        )
    )
    answer: Any = k8s.AuthorizationV1Api(api).create_subject_access_review(review)
    return bool(answer.status.allowed)


def test_installed_rbac_is_least_privilege(kube: ControlPlane, api: Any) -> None:
    namespace = kube.namespace("chart-rbac")
    result = helm("install", "rbac", str(CHART), "--namespace", namespace, kubeconfig=str(kube.kubeconfig))
    assert result.returncode == 0, result.stderr
    gateway = f"system:serviceaccount:{namespace}:rbac-mcp-gateway-gateway"
    operator = f"system:serviceaccount:{namespace}:rbac-mcp-gateway-operator"
    routing = "rbac-mcp-gateway-routing"

    assert can(api, gateway, "get", "configmaps", namespace=namespace, name=routing)
    assert can(api, gateway, "watch", "configmaps", namespace=namespace, name=routing)
    assert not can(api, gateway, "get", "configmaps", namespace=namespace, name="something-else")
    assert not can(api, gateway, "update", "configmaps", namespace=namespace, name=routing)
    assert not can(api, gateway, "get", "secrets", namespace=namespace, name="rbac-mcp-gateway-gateway")

    assert can(api, operator, "list", "upstreams", group="mcpgateway.dev")
    assert can(api, operator, "watch", "tenants", group="mcpgateway.dev")
    assert can(api, operator, "patch", "profiles", group="mcpgateway.dev", namespace="team-a", subresource="status")
    assert can(api, operator, "create", "deployments", group="apps", namespace="team-a")
    assert can(api, operator, "patch", "networkpolicies", group="networking.k8s.io", namespace="team-a")
    assert not can(api, operator, "delete", "networkpolicies", group="networking.k8s.io", namespace="team-a")
    assert can(api, operator, "patch", "configmaps", namespace=namespace, name=routing)
    assert can(api, operator, "update", "leases", group="coordination.k8s.io", namespace=namespace)
    assert not can(api, operator, "get", "secrets", namespace="team-a", name="anything")
    assert not can(api, operator, "update", "profiles", group="mcpgateway.dev", namespace="team-a")
    assert not can(api, operator, "create", "pods", namespace="team-a")
    assert not can(api, operator, "update", "leases", group="coordination.k8s.io", namespace="team-a")
    # Its own Deployment: the owner of the routing ConfigMap and the Lease (--owner-deployment).
    own = "rbac-mcp-gateway-operator"
    assert can(api, operator, "get", "deployments", group="apps", namespace=namespace, name=own)
