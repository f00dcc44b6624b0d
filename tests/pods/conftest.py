"""The pod tests' node (tests/support/node.py) and the chart's release on it: each started once
per session and torn down fully.

The release runs two gateway replicas on PostgreSQL, which runs as a pod here (the stand-in
image build-images.sh makes from Debian's postgresql-15): the machine's own PostgreSQL listens
on loopback, which pods cannot reach, and a pod is what a user of the chart would run.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from tests.chart.support import CHART, VALUES_KIND, helm
from tests.pods.support import (
    DB_NAMESPACE,
    DB_SECRET,
    GATEWAY_REPLICAS,
    NAMESPACE,
    RELEASE,
    Release,
    postgres_objects,
    wait_until,
)
from tests.support.node import Node, start_node


@pytest.fixture(scope="session")
def node() -> Iterator[Node]:
    started = start_node()
    yield started
    started.stop()


def start_postgres(node: Node, core: k8s.CoreV1Api) -> str:
    """PostgreSQL as a pod behind a Service; returns the DSN the gateway uses (by Service DNS name)."""
    password = secrets.token_hex(16)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=DB_NAMESPACE)))
    pod, service = postgres_objects(password)
    core.create_namespaced_pod(DB_NAMESPACE, pod)
    core.create_namespaced_service(DB_NAMESPACE, service)

    def ready() -> bool:
        statuses = core.read_namespaced_pod("postgres", DB_NAMESPACE).status.container_statuses or []
        return bool(statuses) and all(s.ready for s in statuses)

    logs = lambda: node.pod_logs(DB_NAMESPACE, "postgres")  # noqa: E731
    wait_until(ready, "PostgreSQL pod Ready", timeout=120, explain=logs)
    return f"postgresql://mcp:{password}@postgres.{DB_NAMESPACE}.svc.cluster.local:5432/mcp_gateway"


@pytest.fixture(scope="session")
def release(node: Node) -> Iterator[Release]:
    started = time.monotonic()
    with node.api_client() as api:
        core = k8s.CoreV1Api(api)
        dsn = start_postgres(node, core)
        # The DSN Secret is the user's own (the chart only names it), made before the install.
        core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=NAMESPACE)))
        core.create_namespaced_secret(
            NAMESPACE, k8s.V1Secret(metadata=k8s.V1ObjectMeta(name=DB_SECRET), string_data={"dsn": dsn})
        )
        install = helm(
            "install", RELEASE, str(CHART), "--namespace", NAMESPACE,
            "--values", str(VALUES_KIND),
            "--set", "gateway.service.type=ClusterIP", "--set", "gateway.service.nodePort=null",
            "--set", f"gateway.replicaCount={GATEWAY_REPLICAS}",
            "--set", f"gateway.database.existingSecret={DB_SECRET}",
            "--wait", "--timeout", "4m",
            kubeconfig=str(node.kubeconfig), timeout=400,
        )  # fmt: skip
        if install.returncode != 0:
            logs = [node.pod_logs(NAMESPACE, p.metadata.name) for p in core.list_namespaced_pod(NAMESPACE).items]
            pytest.fail(f"helm install failed: {install.stderr}\n" + "\n".join(logs))
        service = core.read_namespaced_service(f"{RELEASE}-gateway", NAMESPACE)
        port = service.spec.ports[0].port
        secret = core.read_namespaced_secret(f"{RELEASE}-gateway", NAMESPACE)
        token = base64.b64decode(secret.data["admin-token"]).decode()
        yield Release(node, api, f"http://{service.spec.cluster_ip}:{port}", token, time.monotonic() - started)
    # Normally done by test_uninstall_pods.py already; the node's stop() deletes the rest.
    helm("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", kubeconfig=str(node.kubeconfig), timeout=300)
