"""`helm uninstall` of the session's release (conftest.py) on the real node; last of the pod tests."""

from __future__ import annotations

import pytest
from kubernetes import client as k8s

from tests.chart.support import helm
from tests.pods.support import DB_SECRET, NAMESPACE, RELEASE, Release, wait_until

pytestmark = [pytest.mark.late_tools, pytest.mark.timeout(3600)]


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

    # charts/mcp-gateway/README.md "Uninstall"; the DSN Secret is the user's own (never the chart's).
    kept = sorted([f"secret/{RELEASE}-gateway", f"secret/{DB_SECRET}"])
    what = "only the kept Secret left after helm uninstall"
    wait_until(lambda: leftovers() == kept, what, explain=lambda: str(leftovers()))
