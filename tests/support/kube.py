"""A real Kubernetes control plane on loopback: etcd, kube-apiserver and
kube-controller-manager, built from Go modules by scripts/build-tools.sh.

There is no kubelet and no scheduler here, so pods never run: tests read
Deployments, ReplicaSets, Services and ConfigMaps instead. The controller
manager makes owner-reference garbage collection and Deployment -> ReplicaSet
real. tests/support/node.py adds a real node to a control plane of its own.
"""

from __future__ import annotations

import secrets
import shutil
import ssl
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.support.processes import ManagedProcess, free_port, start_process
from tests.support.tools import require_tool

REPO = Path(__file__).resolve().parents[2]
CRDS_DIR = REPO / "crds"


def _require_binary(name: str) -> str:
    return str(require_tool(name))


def _write_service_account_keys(directory: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = directory / "sa.key"
    public = directory / "sa.pub"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


def write_kubeconfig(path: Path, server: str, token: str, user: str = "admin", ca_file: Path | None = None) -> Path:
    """A kubeconfig for `server` authenticating with a bearer token."""
    ca_file = ca_file or Path(str(path.parent)) / "certs" / "apiserver.crt"
    cluster: dict[str, object] = {"server": server}
    if ca_file.exists():
        cluster["certificate-authority"] = str(ca_file)
    else:
        cluster["insecure-skip-tls-verify"] = True
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": user}}],
        "current-context": "test",
    }
    path.write_text(yaml.safe_dump(kubeconfig))
    return path


@dataclass
class ControlPlane:
    workdir: Path
    server: str = ""
    token: str = ""
    kubeconfig: Path = field(default_factory=Path)
    processes: list[ManagedProcess] = field(default_factory=list)
    # Extra kube-apiserver flags (the node fixture's plane manages the `kubernetes` endpoints itself).
    apiserver_args: list[str] = field(default_factory=list)

    @property
    def ca_file(self) -> Path:
        """The API server's self-signed serving certificate, trusted as the CA."""
        return self.workdir / "certs" / "apiserver.crt"

    def api_client(self) -> k8s.ApiClient:
        return k8s_config.new_client_from_config(config_file=str(self.kubeconfig))

    def namespace(self, prefix: str = "test") -> str:
        """Create a fresh namespace and return its name."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        with self.api_client() as api:
            k8s.CoreV1Api(api).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
        return name

    def start(self) -> None:
        bin_etcd = _require_binary("etcd")
        bin_apiserver = _require_binary("kube-apiserver")
        bin_controller = _require_binary("kube-controller-manager")
        self.token = secrets.token_hex(24)
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f'{self.token},admin,admin-uid,"system:masters"\n')
        sa_key, sa_pub = _write_service_account_keys(self.workdir)

        etcd_client, etcd_peer = free_port(), free_port()
        self.processes.append(
            start_process(
                [
                    bin_etcd,
                    f"--data-dir={self.workdir / 'etcd'}",
                    f"--listen-client-urls=http://127.0.0.1:{etcd_client}",
                    f"--advertise-client-urls=http://127.0.0.1:{etcd_client}",
                    f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                    f"--initial-cluster=default=http://127.0.0.1:{etcd_peer}",
                    "--unsafe-no-fsync",  # throwaway data: durability buys nothing here
                    "--log-level=warn",
                ],
                name="etcd",
                ready_url=f"http://127.0.0.1:{etcd_client}/health",
            )
        )

        port = free_port()
        self.server = f"https://127.0.0.1:{port}"
        self.processes.append(
            start_process(
                [
                    bin_apiserver,
                    f"--etcd-servers=http://127.0.0.1:{etcd_client}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={port}",
                    f"--cert-dir={self.workdir / 'certs'}",
                    f"--token-auth-file={tokens}",
                    "--authorization-mode=RBAC",
                    "--service-cluster-ip-range=10.96.0.0/16",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-account-key-file={sa_pub}",
                    f"--service-account-signing-key-file={sa_key}",
                    "--api-audiences=https://kubernetes.default.svc.cluster.local",
                    "--anonymous-auth=false",
                    "--v=0",
                    *self.apiserver_args,
                ],
                name="kube-apiserver",
            )
        )
        self._wait_ready()
        self.kubeconfig = write_kubeconfig(self.workdir / "kubeconfig", self.server, self.token, ca_file=self.ca_file)
        self.processes.append(
            start_process(
                [
                    bin_controller,
                    f"--kubeconfig={self.kubeconfig}",
                    f"--authentication-kubeconfig={self.kubeconfig}",
                    f"--authorization-kubeconfig={self.kubeconfig}",
                    "--leader-elect=false",
                    "--use-service-account-credentials=false",
                    f"--service-account-private-key-file={sa_key}",
                    # The CA pods trust (ConfigMap kube-root-ca.crt) for the API server's certificate.
                    f"--root-ca-file={self.ca_file}",
                    "--controllers=*,-nodeipam,-nodelifecycle,-service-lb-controller,-cloud-node-lifecycle",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={free_port()}",
                    "--concurrent-gc-syncs=5",
                    "--v=0",
                ],
                name="kube-controller-manager",
            )
        )
        self.install_crds()

    def _wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        apiserver = self.processes[-1]
        while time.monotonic() < deadline:
            if not apiserver.alive():
                raise RuntimeError(f"kube-apiserver exited:\n{apiserver.log_text()[-4000:]}")
            try:
                response = httpx.get(
                    f"{self.server}/readyz",
                    headers={"Authorization": f"Bearer {self.token}"},
                    verify=ssl.create_default_context(cafile=self.ca_file) if self.ca_file.exists() else False,
                    timeout=2,
                )
                if response.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"kube-apiserver not ready after {timeout}s:\n{apiserver.log_text()[-4000:]}")

    def install_crds(self, timeout: float = 30.0) -> None:
        """Create every CRD in crds/ for real and wait until each is Established."""
        files = sorted(CRDS_DIR.glob("*.yaml"))
        with self.api_client() as api:
            ext = k8s.ApiextensionsV1Api(api)
            names = []
            for path in files:
                for doc in yaml.safe_load_all(path.read_text()):
                    if doc and doc.get("kind") == "CustomResourceDefinition":
                        ext.create_custom_resource_definition(doc)
                        names.append(doc["metadata"]["name"])
            deadline = time.monotonic() + timeout
            for name in names:
                while True:
                    crd = ext.read_custom_resource_definition(name)
                    conditions = (crd.status and crd.status.conditions) or []
                    if any(c.type == "Established" and c.status == "True" for c in conditions):
                        break
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"CRD {name} not Established after {timeout}s")
                    time.sleep(0.1)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop(grace=10)
        self.processes.clear()


def start_control_plane(apiserver_args: list[str] | None = None) -> ControlPlane:
    workdir = Path(tempfile.mkdtemp(prefix="mcp-kube-"))
    plane = ControlPlane(workdir=workdir, apiserver_args=list(apiserver_args or []))
    try:
        plane.start()
    except BaseException:
        plane.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return plane
