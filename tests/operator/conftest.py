"""One operator process for the operator tests, running as a ServiceAccount
bound to exactly the RBAC the chart renders for `operator.watchNamespaces:
[opt-*]` (a glob: the cluster-wide rules), watching namespaces `opt-*`, with
adapter URLs pointed at a stub standing in for adapter Pods (there is no kubelet)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client as k8s

from tests.operator.support import (
    Resources,
    adapter_stub_command,
    install_rbac,
    operator_command,
)
from tests.support.kube import ControlPlane
from tests.support.processes import ManagedProcess, free_port, start_process

NAMESPACE_PREFIX = "opt"


@dataclass
class OperatorEnv:
    kube: ControlPlane
    system_namespace: str
    kubeconfig: Path  # the operator's own (ServiceAccount) credentials
    adapter_url_template: str
    process: ManagedProcess
    api: k8s.ApiClient

    @property
    def res(self) -> Resources:
        return Resources(self.api)

    def namespace(self) -> str:
        return self.kube.namespace(NAMESPACE_PREFIX)

    def adapter_url(self, namespace: str, name: str) -> str:
        return self.adapter_url_template.format(namespace=namespace, name=name)


@pytest.fixture(scope="session")
def adapter_stub() -> Iterator[str]:
    port = free_port()
    process = start_process(
        adapter_stub_command(port), name="adapter-stub", ready_url=f"http://127.0.0.1:{port}/healthz"
    )
    yield f"http://127.0.0.1:{port}" + "/{namespace}/{name}/mcp"
    process.stop()


@pytest.fixture(scope="session")
def operator_env(kube: ControlPlane, adapter_stub: str) -> Iterator[OperatorEnv]:
    system = kube.namespace("opsys")
    workdir = Path(tempfile.mkdtemp(prefix="mcp-operator-test-"))
    kubeconfig = install_rbac(kube, system, workdir, watch_namespaces=[f"{NAMESPACE_PREFIX}-*"])
    cmd = operator_command(
        kubeconfig, namespaces=[f"{NAMESPACE_PREFIX}-*"], system_namespace=system, adapter_url_template=adapter_stub
    )
    process = start_process(cmd, name="operator")
    api = kube.api_client()
    yield OperatorEnv(kube, system, kubeconfig, adapter_stub, process, api)
    process.stop()
    api.close()
