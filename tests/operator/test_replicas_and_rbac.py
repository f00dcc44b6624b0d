"""Two replicas are safe (a Lease elects one; the other takes over when it
dies), a restart mid-reconcile converges without duplicates, and the chart's
cluster-wide operator RBAC is both sufficient (every operator test runs with
it) and narrow."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.operator.conftest import OperatorEnv
from tests.operator.support import Resources, install_rbac, operator_command, wait_for
from tests.support.kube import ControlPlane
from tests.support.processes import ManagedProcess

PREFIX = "ople"  # not matched by the shared operator's "opt-*"


@pytest.fixture(scope="module")
def sa_kubeconfig(kube: ControlPlane) -> tuple[str, Path]:
    system = kube.namespace("oplesys")
    return system, install_rbac(kube, system, Path(tempfile.mkdtemp(prefix="mcp-operator-le-")), [f"{PREFIX}-*"])


def _start(spawn: Callable[..., ManagedProcess], sa: tuple[str, Path], stub: str, name: str) -> ManagedProcess:
    system, kubeconfig = sa
    cmd = operator_command(
        kubeconfig, namespaces=[f"{PREFIX}-*"], system_namespace=system, adapter_url_template=stub, lease_name="le"
    )
    return spawn(cmd, name=name)


def _converged(res: Resources, namespace: str, names: list[str]) -> bool:
    for name in names:
        obj = res.get("upstreams", namespace, name) or {}
        if (obj.get("status") or {}).get("observedGeneration") != obj["metadata"]["generation"]:
            return False
    deployments = res.apps.list_namespaced_deployment(namespace).items
    return sorted(d.metadata.name for d in deployments) == sorted(f"{n}-adapter" for n in names)


def test_standby_replica_takes_over_when_the_leader_dies(
    kube: ControlPlane, spawn: Callable[..., ManagedProcess], sa_kubeconfig: tuple[str, Path], adapter_stub: str
) -> None:
    first = _start(spawn, sa_kubeconfig, adapter_stub, "operator-a")
    wait_for(lambda: "became leader" in first.log_text(), what="first replica leads")
    second = _start(spawn, sa_kubeconfig, adapter_stub, "operator-b")
    wait_for(lambda: "waiting to become leader" in second.log_text(), what="second replica waits")

    namespace = kube.namespace(PREFIX)
    with kube.api_client() as api:
        res = Resources(api)
        names = [f"u{i}" for i in range(5)]
        for name in names:
            res.create("upstreams", namespace, name, {"mcp": {"url": "https://a.example.com/mcp"}})
        wait_for(lambda: _converged(res, namespace, names), what="the leader reconciles")
        assert "became leader" not in second.log_text()  # it stayed passive meanwhile

        first.kill()  # a crash: the lease is not released, it has to expire
        wait_for(lambda: "became leader" in second.log_text(), timeout=30, what="the standby takes over")
        names.append("after-failover")
        res.create("upstreams", namespace, "after-failover", {"mcp": {"url": "https://a.example.com/mcp"}})
        wait_for(lambda: _converged(res, namespace, names), what="the new leader reconciles")


def test_restart_mid_reconcile_converges_without_duplicates(
    kube: ControlPlane, spawn: Callable[..., ManagedProcess], sa_kubeconfig: tuple[str, Path], adapter_stub: str
) -> None:
    namespace = kube.namespace(PREFIX)
    with kube.api_client() as api:
        res = Resources(api)
        names = [f"r{i}" for i in range(20)]
        for name in names:
            res.create("upstreams", namespace, name, {"stdio": {"command": "server", "args": [name]}})
        operator = _start(spawn, sa_kubeconfig, adapter_stub, "operator-crash")
        wait_for(lambda: res.apps.list_namespaced_deployment(namespace).items, what="some progress")
        operator.kill()  # mid-reconcile: some objects applied, some statuses not yet written
        _start(spawn, sa_kubeconfig, adapter_stub, "operator-restarted")
        wait_for(lambda: _converged(res, namespace, names), timeout=60, what="convergence after the restart")
        for deployment in res.apps.list_namespaced_deployment(namespace).items:
            assert len(deployment.metadata.owner_references) == 1


def test_operator_role_is_narrow(operator_env: OperatorEnv) -> None:
    api = k8s_config.new_client_from_config(config_file=str(operator_env.kubeconfig))
    review = k8s.AuthorizationV1Api(api)

    def allowed(verb: str, resource: str, group: str = "") -> bool:
        body = k8s.V1SelfSubjectAccessReview(
            spec=k8s.V1SelfSubjectAccessReviewSpec(
                resource_attributes=k8s.V1ResourceAttributes(verb=verb, resource=resource, group=group, namespace="x")
            )
        )
        return bool(review.create_self_subject_access_review(body).status.allowed)

    try:
        assert allowed("patch", "deployments", "apps") and allowed("patch", "upstreams/status", "mcpgateway.dev")
        assert not allowed("get", "secrets")  # secrets are referenced, never read
        assert not allowed("delete", "deployments", "apps")  # the garbage collector deletes
        assert allowed("patch", "networkpolicies", "networking.k8s.io")
        assert not allowed("delete", "networkpolicies", "networking.k8s.io")
        assert not allowed("patch", "upstreams", "mcpgateway.dev")  # only status is written
        assert not allowed("create", "pods")
    finally:
        api.close()
    # ...and yet enough: the operator that served every other test never hit a permission error.
    assert "Forbidden" not in operator_env.process.log_text()
