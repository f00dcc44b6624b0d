"""With `operator.watchNamespaces` listing plain namespaces, the chart grants the
workload verbs through one Role per listed namespace and keeps only Tenants,
CRD discovery and namespaces cluster-wide. The operator runs with exactly those
rules and does its whole job; SubjectAccessReviews show it can write nothing
in a namespace it does not serve."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.operator.support import Resources, install_rbac, operator_command, render_rbac, wait_for
from tests.support.kube import ControlPlane
from tests.support.processes import ManagedProcess

PREFIX = "opns"  # not matched by the shared operator's "opt-*"


def _can(api: k8s.ApiClient, verb: str, resource: str, group: str = "", namespace: str = "", name: str = "") -> bool:
    attributes = k8s.V1ResourceAttributes(
        verb=verb, resource=resource, group=group, namespace=namespace or None, name=name or None
    )
    body = k8s.V1SelfSubjectAccessReview(spec=k8s.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes))
    return bool(k8s.AuthorizationV1Api(api).create_self_subject_access_review(body).status.allowed)


def _ready(res: Resources, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
    condition = res.condition(plural, namespace, name)
    return condition if condition and condition["status"] == "True" else None


def _adapter_objects(api: k8s.ApiClient, namespace: str) -> bool:
    deployments = k8s.AppsV1Api(api).list_namespaced_deployment(namespace).items
    return bool(deployments and k8s.NetworkingV1Api(api).list_namespaced_network_policy(namespace).items)


def test_rendered_roles_follow_the_listed_namespaces() -> None:
    docs = render_rbac("sys", "r", ["team-a", "team-b"])
    roles = {(d["kind"], d["metadata"]["namespace"]) for d in docs if d["kind"] in ("Role", "RoleBinding")}
    # "default": only Events about Tenants (cluster-scoped objects' Events must live there).
    assert roles == {(k, ns) for k in ("Role", "RoleBinding") for ns in ("sys", "team-a", "team-b", "default")}
    (events_role,) = [d for d in docs if d["kind"] == "Role" and d["metadata"]["namespace"] == "default"]
    assert events_role["rules"] == [{"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}]
    (cluster_role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    cluster_resources = {r for rule in cluster_role["rules"] for r in rule["resources"]}
    assert cluster_resources == {"tenants", "tenants/status", "customresourcedefinitions", "namespaces"}
    # A glob cannot be a Role's namespace: the workload rules stay cluster-wide.
    glob = render_rbac("sys", "r", ["team-*"])
    assert {d["metadata"]["namespace"] for d in glob if d["kind"] == "Role"} == {"sys"}
    (glob_role,) = [d for d in glob if d["kind"] == "ClusterRole"]
    assert "deployments" in {r for rule in glob_role["rules"] for r in rule["resources"]}


def test_operator_works_with_namespaced_roles_only(
    kube: ControlPlane, spawn: Callable[..., ManagedProcess], adapter_stub: str
) -> None:
    system, first, second, other = (kube.namespace(PREFIX) for _ in range(4))
    kubeconfig = install_rbac(kube, system, Path(tempfile.mkdtemp(prefix="mcp-operator-ns-")), [first, second])
    cmd = operator_command(
        kubeconfig, namespaces=[first, second], system_namespace=system, adapter_url_template=adapter_stub
    )
    operator = spawn(cmd, name="operator-namespaced")

    with kube.api_client() as api:
        res = Resources(api)
        tenant = f"ns-{uuid.uuid4().hex[:6]}"
        res.tenant(tenant, [first, second])
        res.create("upstreams", first, "live-tools", {"mcp": {"url": "https://a.example.com/mcp"}})
        res.create("upstreams", second, "remote", {"mcp": {"url": "https://b.example.com/mcp"}})
        res.create("upstreams", other, "stray", {"mcp": {"url": "https://c.example.com/mcp"}})
        profile_id = f"nsp-{uuid.uuid4().hex[:6]}"
        res.create("profiles", first, "p", {"id": profile_id, "upstreams": [{"name": "live-tools"}]})

        # The whole job: workloads and NetworkPolicies, probe and status, routing, Events.
        condition = wait_for(lambda: _ready(res, "upstreams", first, "live-tools"), what="Upstream Ready")
        assert condition["reason"] == "AdapterReady"
        wait_for(lambda: _adapter_objects(api, first), what=f"the adapter and its policy in {first}")
        wait_for(lambda: _adapter_objects(api, second), what=f"the adapter and its policy in {second}")
        wait_for(lambda: _ready(res, "profiles", first, "p"), what="Profile Ready")
        assert res.routed_profile(system, profile_id)  # the routing ConfigMap, created by name
        res.wait_event(first, "live-tools", "AdapterReady")
        # Events about the (cluster-scoped) Tenant, filed in "default".
        wait_for(lambda: res.events("default", tenant), what="a Tenant event")

        # A namespace it does not serve stays untouched...
        assert not res.apps.list_namespaced_deployment(other).items
        assert not (res.get("upstreams", other, "stray") or {}).get("status")
    log = operator.log_text()
    assert "Forbidden" not in log and "Not enough permissions" not in log, "the namespaced rules must suffice"

    # ...and could not be touched: the operator's own credentials, asked of the API server.
    own = k8s_config.new_client_from_config(config_file=str(kubeconfig))
    try:
        assert _can(own, "patch", "deployments", "apps", first)
        assert _can(own, "create", "networkpolicies", "networking.k8s.io", second)
        assert not _can(own, "patch", "deployments", "apps", other)
        assert not _can(own, "create", "deployments", "apps", other)
        assert not _can(own, "patch", "networkpolicies", "networking.k8s.io", other)
        assert not _can(own, "patch", "configmaps", namespace=other)
        assert not _can(own, "create", "events", namespace=other)
        assert not _can(own, "list", "upstreams", "mcpgateway.dev")  # no cluster-wide read of Upstreams
        assert not _can(own, "patch", "configmaps", namespace=system, name="something-else")
        assert not _can(own, "delete", "networkpolicies", "networking.k8s.io", first)
        assert _can(own, "list", "tenants", "mcpgateway.dev")
    finally:
        own.close()
