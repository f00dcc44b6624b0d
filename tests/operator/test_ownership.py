"""`--owner-deployment` (the chart sets it): the operator's routing ConfigMap and leader Lease are
owned by the operator's own Deployment, so deleting the Deployment (what `helm uninstall` does)
lets the real garbage collector remove them. The operator runs as the chart's ServiceAccount
with the chart's namespaced RBAC, which lets it read its own Deployment and nothing else there."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from tests.operator.support import ROUTING_CONFIGMAP, install_rbac, operator_command, wait_for
from tests.support.kube import ControlPlane
from tests.support.processes import ManagedProcess

PREFIX = "opown"  # not matched by the shared operator's "opt-*"
UNUSED_ADAPTERS = "http://127.0.0.1:9/{namespace}/{name}/mcp"  # no Upstreams here: never called


def _deployment(core_apps: k8s.AppsV1Api, namespace: str, name: str) -> Any:
    """A stand-in for the chart's operator Deployment (no kubelet here: only its identity matters)."""
    labels = {"app": name}
    body = k8s.V1Deployment(
        metadata=k8s.V1ObjectMeta(name=name),
        spec=k8s.V1DeploymentSpec(
            replicas=0,
            selector=k8s.V1LabelSelector(match_labels=labels),
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=labels),
                spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="operator", image="mcp-operator:test")]),
            ),
        ),
    )
    return core_apps.create_namespaced_deployment(namespace, body)


def _owners(read: Callable[[], Any]) -> list[tuple[str, str, str, str]] | None:
    try:
        refs = read().metadata.owner_references or []
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return [(r.api_version, r.kind, r.name, r.uid) for r in refs]


def _gone(read: Callable[[], Any]) -> bool:
    return _owners(read) is None


def test_routing_configmap_and_lease_are_owned_and_collected_with_the_deployment(
    kube: ControlPlane, spawn: Callable[..., ManagedProcess]
) -> None:
    system, watched = kube.namespace(PREFIX), kube.namespace(PREFIX)
    release = f"own{uuid.uuid4().hex[:6]}"
    name = f"{release}-mcp-gateway-operator"  # what the chart names the operator's Deployment
    workdir = Path(tempfile.mkdtemp(prefix="mcp-operator-own-"))
    kubeconfig = install_rbac(kube, system, workdir, watch_namespaces=[watched], release=release)
    api = kube.api_client()
    core, coordination = k8s.CoreV1Api(api), k8s.CoordinationV1Api(api)
    uid = _deployment(k8s.AppsV1Api(api), system, name).metadata.uid
    cmd = operator_command(
        kubeconfig, namespaces=[watched], system_namespace=system, adapter_url_template=UNUSED_ADAPTERS, lease_name=name
    )

    def configmap() -> Any:
        return core.read_namespaced_config_map(ROUTING_CONFIGMAP, system)

    def lease() -> Any:
        return coordination.read_namespaced_lease(name, system)

    # An operator from before --owner-deployment existed: its objects have no owner.
    first = spawn(cmd, name="operator-unowned")
    assert wait_for(lambda: _owners(configmap) == [] and _owners(lease) == [], what="unowned ConfigMap and Lease")
    first.stop()

    # The chart's operator adopts both (same routing content, so only the owner changes).
    owned = spawn([*cmd, "--owner-deployment", name], name="operator-owned")
    owner = [("apps/v1", "Deployment", name, uid)]
    wait_for(lambda: _owners(configmap) == owner, what="the routing ConfigMap owned by the Deployment")
    wait_for(lambda: _owners(lease) == owner, what="the Lease owned by the Deployment")
    log = owned.log_text()
    assert "Forbidden" not in log and "no owner" not in log, log[-3000:]

    # helm uninstall: the operator's pods stop, the Deployment is deleted; both objects follow it.
    owned.stop()
    k8s.AppsV1Api(api).delete_namespaced_deployment(name, system, propagation_policy="Background")
    wait_for(lambda: _gone(configmap), timeout=60, what="the routing ConfigMap to be garbage-collected")
    wait_for(lambda: _gone(lease), timeout=60, what="the Lease to be garbage-collected")
    api.close()


def test_objects_outside_the_deployments_namespace_get_no_owner(
    kube: ControlPlane, spawn: Callable[..., ManagedProcess]
) -> None:
    """An owner reference resolves in the dependent's namespace: pointing across namespaces would make the
    garbage collector delete the ConfigMap at once, so the operator leaves it unowned and says so."""
    system, watched = kube.namespace(PREFIX), kube.namespace(PREFIX)
    release = f"own{uuid.uuid4().hex[:6]}"
    name = f"{release}-mcp-gateway-operator"
    workdir = Path(tempfile.mkdtemp(prefix="mcp-operator-own-"))
    kubeconfig = install_rbac(kube, system, workdir, watch_namespaces=[watched], release=release)
    api = kube.api_client()
    core, coordination = k8s.CoreV1Api(api), k8s.CoordinationV1Api(api)
    uid = _deployment(k8s.AppsV1Api(api), system, name).metadata.uid
    cmd = operator_command(
        kubeconfig, namespaces=[watched], system_namespace=system, adapter_url_template=UNUSED_ADAPTERS, lease_name=name
    )
    # The routing ConfigMap in the watched namespace (the chart's RBAC lets it write ConfigMaps there).
    cmd = [*cmd, "--routing-configmap", f"{watched}/{ROUTING_CONFIGMAP}", "--owner-deployment", name]
    operator = spawn(cmd, name="operator-elsewhere")

    def configmap() -> Any:
        return core.read_namespaced_config_map(ROUTING_CONFIGMAP, watched)

    def lease() -> Any:
        return coordination.read_namespaced_lease(name, system)

    wait_for(lambda: _owners(lease) == [("apps/v1", "Deployment", name, uid)], what="the Lease owned")
    wait_for(lambda: _owners(configmap) is not None, what="the routing ConfigMap")
    assert _owners(configmap) == []
    assert f"the routing ConfigMap is in namespace {watched}, not in the owner Deployment's {system}" in (
        operator.log_text()
    )
    api.close()
