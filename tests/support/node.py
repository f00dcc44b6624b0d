"""A real Kubernetes node for the pod tests: containerd (runc, the CNI bridge), kubelet,
kube-proxy (iptables), kube-scheduler, CoreDNS and a NetworkPolicy agent, beside a control
plane of its own.

Why its own control plane (tests/support/kube.py, started a second time): other tests leave
Deployments behind in the shared `kube` plane, and a node joining it would try to run them
(and pull their images). Here only the pod tests' own workloads exist.

Network: the pods live on the bridge BRIDGE (POD_CIDR, the host is GATEWAY_IP on it). The
host reaches ClusterIPs through kube-proxy's rules, with a route sending SERVICE_CIDR to the
bridge so nothing is ever routed off the machine. Pods reach the API server (which listens on
loopback only) through a forwarder on GATEWAY_IP, named by the `kubernetes` Service's
EndpointSlice, and resolve Service names with CoreDNS, a host process on GATEWAY_IP:53 (no
image to build, it starts in well under a second, and it reads the API server directly; the
kubelet gives pods GATEWAY_IP as their nameserver). CoreDNS has no upstream: names outside
the cluster do not resolve, and nothing leaves the machine.

NetworkPolicy: the bridge plugin enforces none, so the node runs kube-network-policies (the
sigs.k8s.io controller, scripts/netpol/main.go), a host process judging the first packet of
each pod connection from a netfilter queue against the policies of both ends. Its own
nftables rules need the nft `queue` expression, which this kernel lacks (CONFIG_NFT_QUEUE is
not set: loading them fails with "netlink receive: no such file or directory"), so the fixture
sends the packets to its queue with iptables instead (chain NETPOL_CHAIN in the mangle
table's POSTROUTING, i.e. after Service DNAT and before kube-proxy's masquerading, where the
agent's own rules sit too; br_netfilter passes bridged pod-to-pod frames through it). As in
the agent's rules: root's own connections on the node (the kubelet's probes, the tests'
clients) and established connections are not judged, and a queued packet is dropped while
no agent listens (fail closed).

Images never come from a registry: the pause (sandbox) image is assembled here from the
static binary build-tools.sh builds, and the project's images are built by
scripts/build-images.sh --local-bases --save (with the PostgreSQL stand-in, POSTGRES_IMAGE) and
imported into containerd's k8s.io namespace.

Needs root (a CNI bridge, iptables, mounts); CI runs as root. stop() removes everything the
node made: pods, their network namespaces, mounts, the bridge and route, iptables chains and
containerd's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from kubernetes import client as k8s

from tests.support.kube import REPO, ControlPlane, start_control_plane
from tests.support.processes import ARTIFACTS, ManagedProcess, free_port, start_process
from tests.support.tools import require_tool, wait_for_background_build

NODE_NAME = "mcp-node"
BRIDGE = "mcp-cni0"
POD_CIDR = "10.244.0.0/24"
GATEWAY_IP = "10.244.0.1"
SERVICE_CIDR = "10.96.0.0/16"  # the API server's --service-cluster-ip-range (kube.py)
CLUSTER_DOMAIN = "cluster.local"
PAUSE_IMAGE = "localhost/mcp-pause:{version}"
CACHE = Path(os.environ.get("MCP_GATEWAY_CACHE", Path.home() / ".cache" / "mcp-gateway"))
IMAGE_ARCHIVES = CACHE / "images" / "archives"
# containerd's image store outlives a run (importing the images takes a minute); its
# containers and state do not (stop() deletes them, start() deletes any a crash left).
CONTAINERD_ROOT = CACHE / "node" / "containerd"
# The project's images, and the PostgreSQL stand-in the pod tests run as a pod (build-images.sh).
COMPONENTS = ("gateway", "operator", "adapter", "postgres")
POSTGRES_IMAGE = "localhost/mcp-postgres-standin:15"
# Kernel settings the kubelet rewrites at start (protectKernelDefaults: false, which this
# machine needs); saved before and written back at stop, so the host keeps its own.
KUBELET_SYSCTLS = ("vm.overcommit_memory", "vm.panic_on_oom", "kernel.panic", "kernel.panic_on_oops")
# br_netfilter's switch (set to 1 while the node runs, restored at stop).
BRIDGE_NETFILTER = "net.bridge.bridge-nf-call-iptables"
# The NetworkPolicy agent's netfilter queue, and the iptables chain (mangle table) feeding it.
NETPOL_QUEUE = 100
NETPOL_CHAIN = "MCP-NETPOL"
NFQUEUE_STATUS = Path("/proc/net/netfilter/nfnetlink_queue")


def run(cmd: list[str], *, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return proc


def build_images() -> None:
    """The project's images as archives for containerd (cached by content: seconds when unchanged).

    `make test` builds them in the background (scripts/build-tools.sh target `images`); wait
    for that first so the check here is a cache hit.
    """
    wait_for_background_build()
    run([str(REPO / "scripts" / "build-images.sh"), "--local-bases", "--save", str(IMAGE_ARCHIVES)], timeout=3600)


class Forwarder:
    """TCP from (host, port) to 127.0.0.1:target, on an event loop in a thread of its own."""

    def __init__(self, host: str, port: int, target: int) -> None:
        self.host, self.port, self.target = host, port, target
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None

    def start(self) -> None:
        self._thread.start()
        coroutine = asyncio.start_server(self._handle, self.host, self.port)
        self._server = asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def stop(self) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


def pause_image_archive(binary: Path, name: str, destination: Path) -> Path:
    """An OCI image archive holding only the static pause binary (no registry, no builder)."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        binary = binary.resolve()  # a symlink in the tool dir: archive the file itself
        info = tar.gettarinfo(str(binary), arcname="pause")
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        with binary.open("rb") as handle:
            tar.addfile(info, handle)
    layer_bytes = layer.getvalue()
    layer_digest = hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
        }
    ).encode()
    blobs: dict[str, bytes] = {layer_digest: layer_bytes}

    def add(data: bytes) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"digest": f"sha256:{digest}", "size": len(data)}

    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **add(config)},
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": f"sha256:{layer_digest}",
                    "size": len(layer_bytes),
                }
            ],
        }
    ).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **add(manifest),
                "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name},
            }
        ],
    }
    files = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}', "index.json": json.dumps(index).encode()}
    files.update({f"blobs/sha256/{digest}": data for digest, data in blobs.items()})
    with tarfile.open(destination, "w") as tar:
        for path, data in files.items():
            entry = tarfile.TarInfo(path)
            entry.size = len(data)
            tar.addfile(entry, io.BytesIO(data))
    return destination


def _kubelet_config(workdir: Path, socket: Path, healthz_port: int, port: int) -> dict[str, object]:
    # Settings for a machine without systemd, with hybrid cgroup v1, no swap accounting and
    # no CAP_SYS_RESOURCE (the probe): no QoS cgroups, no allocatable enforcement,
    # and eviction thresholds at 0 % so a full-ish disk never evicts the test's pods.
    zero = "0%"
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "containerRuntimeEndpoint": f"unix://{socket}",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "cgroupsPerQOS": False,
        "enforceNodeAllocatable": [],
        "protectKernelDefaults": False,
        "localStorageCapacityIsolation": False,
        "evictionHard": {
            "memory.available": zero,
            "nodefs.available": zero,
            "nodefs.inodesFree": zero,
            "imagefs.available": zero,
            "imagefs.inodesFree": zero,
        },
        # Never collect the imported images (they cannot be pulled again).
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "clusterDNS": [GATEWAY_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": "",  # pods get the cluster DNS only, nothing of the host's resolver
        "address": GATEWAY_IP,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "podLogsDir": str(workdir / "pod-logs"),
        "serializeImagePulls": False,
        "nodeStatusUpdateFrequency": "4s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "maxPods": 40,
    }


def _containerd_config(workdir: Path, socket: Path, pause: str, snapshotter: str) -> str:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{CONTAINERD_ROOT}"
state = "{workdir / "containerd-state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "{socket}"

[{cri}]
  # Every image is local; this one is imported before the kubelet starts.
  sandbox_image = "{pause}"
  # No CAP_SYS_RESOURCE: without this every sandbox fails with "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  enable_selinux = false

[{cri}.containerd]
  # overlayfs where the kernel mounts it here (each container then costs no copy), else
  # native: a full copy of the image per container (seconds to make and to delete).
  snapshotter = "{snapshotter}"

[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{workdir / "net.d"}"
"""


def _cni_config(workdir: Path) -> dict[str, object]:
    return {
        "cniVersion": "1.0.0",
        "name": "mcp-node",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                # Pods talk to each other, to the host and to Services only: no masquerading out.
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR, "gateway": GATEWAY_IP}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(workdir / "cni-ipam"),
                },
            }
        ],
    }


def _kube_proxy_config(kubeconfig: Path) -> dict[str, object]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": POD_CIDR,
        "bindAddress": "127.0.0.1",
        "healthzBindAddress": f"127.0.0.1:{free_port()}",
        "metricsBindAddress": f"127.0.0.1:{free_port()}",
        # Leave the host's conntrack sysctls alone (and the table size, which needs a capability).
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        # Replies of a pod to another pod through a Service cross the bridge, not the host's
        # routing: masquerading every Service connection keeps them on the NATed path.
        "iptables": {"masqueradeAll": True},
        # NodePorts only on the bridge address (loopback NodePorts would need route_localnet).
        "nodePortAddresses": [f"{GATEWAY_IP}/32"],
    }


def _corefile(kubeconfig: Path, ready_port: int) -> str:
    return f""".:53 {{
    bind {GATEWAY_IP}
    errors
    ready 127.0.0.1:{ready_port}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} test
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
}}
"""


@dataclass
class Node:
    """The node and its control plane; `start()` returns once the node is Ready and schedulable."""

    workdir: Path
    plane: ControlPlane | None = None
    processes: list[ManagedProcess] = field(default_factory=list)
    forwarder: Forwarder | None = None
    socket: Path = field(default_factory=Path)
    netns_before: set[str] = field(default_factory=set)
    sysctls_before: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    snapshotter: str = "native"

    @property
    def kubeconfig(self) -> Path:
        assert self.plane is not None
        return self.plane.kubeconfig

    def api_client(self) -> k8s.ApiClient:
        assert self.plane is not None
        return self.plane.api_client()

    def ctr(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return run(["ctr", "--address", str(self.socket), "--namespace", "k8s.io", *args], check=check, timeout=timeout)

    # --- start ---------------------------------------------------------------------------

    def start(self) -> None:
        if os.geteuid() != 0:
            raise RuntimeError("the node fixture needs root (CNI bridge, iptables, mounts); CI runs the tests as root")
        begin = time.monotonic()
        names = ("kubelet", "kube-proxy", "kube-scheduler", "coredns", "kube-network-policies")
        binaries = {name: str(require_tool(name)) for name in names}
        pause_binary = require_tool("pause")
        build_images()
        self.timings["images"] = time.monotonic() - begin

        started = time.monotonic()
        _refuse_another_node()
        _remove_host_network()  # left over by an interrupted run
        if not Path("/proc/sys", *BRIDGE_NETFILTER.split(".")).exists():
            raise RuntimeError(f"{BRIDGE_NETFILTER} is missing: the node needs the kernel's br_netfilter")
        self.sysctls_before = {name: _sysctl(name) for name in (*KUBELET_SYSCTLS, BRIDGE_NETFILTER)}
        # Bridged pod-to-pod frames through iptables (kube-proxy's rules, the policy diversion).
        run(["sysctl", "-q", "-w", f"{BRIDGE_NETFILTER}=1"])
        self.netns_before = _netns()
        _make_host_network()
        self.plane = start_control_plane(apiserver_args=["--endpoint-reconciler-type=none"])
        self._publish_api_server()
        self._start_containerd()
        self._import_images(pause_binary)
        self._start_dns(binaries["coredns"])
        self._start_node(binaries)
        self._start_policy_agent(binaries["kube-network-policies"])
        self._wait_ready()
        self.timings["node"] = time.monotonic() - started
        self._record_timings()

    def _record_timings(self) -> None:
        """Seconds per phase, for the README's measurements (tests/artifacts/node-timings.json)."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "node-timings.json").write_text(json.dumps({k: round(v, 1) for k, v in self.timings.items()}))

    def _publish_api_server(self) -> None:
        """Pods reach the API server through the `kubernetes` Service: point it at the forwarder."""
        assert self.plane is not None
        port = int(self.plane.server.rsplit(":", 1)[1])
        self.forwarder = Forwarder(GATEWAY_IP, port, port)
        self.forwarder.start()
        with self.api_client() as api:
            discovery = k8s.DiscoveryV1Api(api)
            discovery.create_namespaced_endpoint_slice(
                "default",
                k8s.V1EndpointSlice(
                    metadata=k8s.V1ObjectMeta(
                        name="kubernetes",
                        labels={
                            "kubernetes.io/service-name": "kubernetes",
                            "endpointslice.kubernetes.io/managed-by": "mcp-gateway-tests",
                        },
                    ),
                    address_type="IPv4",
                    endpoints=[k8s.V1Endpoint(addresses=[GATEWAY_IP], conditions=k8s.V1EndpointConditions(ready=True))],
                    ports=[k8s.DiscoveryV1EndpointPort(name="https", port=port, protocol="TCP")],
                ),
            )

    def _start_containerd(self) -> None:
        self.socket = self.workdir / "containerd.sock"
        (self.workdir / "net.d").mkdir()
        (self.workdir / "net.d" / "10-mcp-node.conflist").write_text(json.dumps(_cni_config(self.workdir)))
        config = self.workdir / "containerd.toml"
        self.snapshotter = _snapshotter()
        config.write_text(_containerd_config(self.workdir, self.socket, self.pause_image, self.snapshotter))
        CONTAINERD_ROOT.mkdir(parents=True, exist_ok=True)
        self.processes.append(start_process(["containerd", "--config", str(config)], name="containerd"))
        deadline = time.monotonic() + 30
        while self.ctr("version", check=False).returncode != 0:
            if not self.processes[-1].alive() or time.monotonic() > deadline:
                raise RuntimeError(f"containerd did not start:\n{self.processes[-1].log_text()[-4000:]}")
            time.sleep(0.2)
        self._remove_containers()  # an interrupted run's

    @property
    def pause_image(self) -> str:
        return PAUSE_IMAGE.format(version=require_tool("pause").resolve().name.removeprefix("pause-"))

    def _import_images(self, pause_binary: Path) -> None:
        begin = time.monotonic()
        # An image is unpacked for one snapshotter: the markers name the key and the snapshotter.
        pause_marker = CONTAINERD_ROOT / "imported-pause.key"
        if not pause_marker.exists() or pause_marker.read_text().strip() != f"{self.pause_image} {self.snapshotter}":
            archive = pause_image_archive(pause_binary, self.pause_image, self.workdir / "pause.tar")
            self.ctr("images", "import", "--snapshotter", self.snapshotter, str(archive))
            pause_marker.write_text(f"{self.pause_image} {self.snapshotter}")
        for component in COMPONENTS:
            # build-images.sh writes the content key of each archive beside it.
            archive = IMAGE_ARCHIVES / f"mcp-{component}.tar"
            key = f"{Path(f'{archive}.key').read_text().strip()} {self.snapshotter}"
            marker = CONTAINERD_ROOT / f"imported-{component}.key"
            if marker.exists() and marker.read_text().strip() == key:
                continue
            self.ctr("images", "import", "--snapshotter", self.snapshotter, str(archive))
            marker.write_text(key)
        self.timings["import"] = time.monotonic() - begin

    def _start_dns(self, coredns: str) -> None:
        assert self.plane is not None
        ready_port = free_port()
        corefile = self.workdir / "Corefile"
        corefile.write_text(_corefile(self.kubeconfig, ready_port))
        self.processes.append(
            start_process(
                [coredns, "-conf", str(corefile)],
                name="coredns",
                ready_url=f"http://127.0.0.1:{ready_port}/ready",
                timeout=60,
            )
        )

    def _start_node(self, binaries: dict[str, str]) -> None:
        assert self.plane is not None
        kubeconfig = str(self.kubeconfig)
        healthz = free_port()
        kubelet_config = self.workdir / "kubelet.yaml"
        kubelet_config.write_text(yaml.safe_dump(_kubelet_config(self.workdir, self.socket, healthz, free_port())))
        self.processes.append(
            start_process(
                [
                    binaries["kubelet"],
                    f"--config={kubelet_config}",
                    f"--kubeconfig={kubeconfig}",
                    f"--root-dir={self.workdir / 'kubelet'}",
                    f"--hostname-override={NODE_NAME}",
                    f"--node-ip={GATEWAY_IP}",
                    "--v=1",
                ],
                name="kubelet",
                ready_url=f"http://127.0.0.1:{healthz}/healthz",
                timeout=90,
            )
        )
        proxy_config = self.workdir / "kube-proxy.yaml"
        proxy_config.write_text(yaml.safe_dump(_kube_proxy_config(self.kubeconfig)))
        self.processes.append(
            start_process([binaries["kube-proxy"], f"--config={proxy_config}", "--v=1"], name="kube-proxy")
        )
        self.processes.append(
            start_process(
                [
                    binaries["kube-scheduler"],
                    f"--kubeconfig={kubeconfig}",
                    f"--authentication-kubeconfig={kubeconfig}",
                    f"--authorization-kubeconfig={kubeconfig}",
                    "--leader-elect=false",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={free_port()}",
                    "--v=1",
                ],
                name="kube-scheduler",
            )
        )

    def _start_policy_agent(self, binary: str, timeout: float = 60) -> None:
        """kube-network-policies, then the rules sending it pod traffic once it listens on its queue."""
        if _queue_bound(NETPOL_QUEUE):
            raise RuntimeError(f"netfilter queue {NETPOL_QUEUE} is taken by another process on this machine")
        agent = start_process(
            [binary, f"--kubeconfig={self.kubeconfig}", f"--node-name={NODE_NAME}", f"--nfqueue-id={NETPOL_QUEUE}"],
            name="kube-network-policies",
        )
        self.processes.append(agent)
        # It binds the queue once its informers have synced (pods, namespaces, policies).
        deadline = time.monotonic() + timeout
        while not _queue_bound(NETPOL_QUEUE):
            if not agent.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"kube-network-policies did not bind its queue:\n{agent.log_text()[-4000:]}")
            time.sleep(0.2)
        _divert_to_policy_agent()

    def _wait_ready(self, timeout: float = 120) -> None:
        """Wait for Ready, then lift the not-ready taint (the node lifecycle controller is off in kube.py)."""
        deadline = time.monotonic() + timeout
        with self.api_client() as api:
            core = k8s.CoreV1Api(api)
            while True:
                self._check_alive()
                node = next(iter(core.list_node(field_selector=f"metadata.name={NODE_NAME}").items), None)
                conditions = (node and node.status and node.status.conditions) or []
                if any(c.type == "Ready" and c.status == "True" for c in conditions):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"node {NODE_NAME} not Ready after {timeout}s: {conditions}")
                time.sleep(0.5)
            taints = [t for t in (node.spec.taints or []) if not t.key.startswith("node.kubernetes.io/")]
            core.patch_node(NODE_NAME, {"spec": {"taints": [t.to_dict() for t in taints] or None}})

    def _check_alive(self) -> None:
        for process in self.processes:
            if not process.alive():
                raise RuntimeError(f"{process.name} exited:\n{process.log_text()[-4000:]}")

    def pod_logs(self, namespace: str, pod: str) -> str:
        """Container logs as the kubelet writes them (the API server has no client cert for the kubelet)."""
        texts = []
        for path in sorted((self.workdir / "pod-logs").glob(f"{namespace}_{pod}_*/*/*.log")):
            texts.append(f"--- {path.parent.name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(texts)

    # --- stop ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Remove every pod, then every process, mount, namespace, chain and file the node made."""
        begin = time.monotonic()
        with contextlib.suppress(Exception):
            self._delete_pods()
        by_name = {p.name: p for p in self.processes}
        # The rules first: with no agent on the queue they would drop every new pod connection.
        _remove_policy_diversion()
        for name in ("kube-network-policies", "kube-scheduler", "kube-proxy", "kubelet", "coredns"):
            if name in by_name:
                by_name[name].stop(grace=10)
        with contextlib.suppress(Exception):
            self._remove_containers()
        if "containerd" in by_name:
            by_name["containerd"].stop(grace=10)
        self.processes.clear()
        _kill_shims(self.socket)
        if self.forwarder is not None:
            self.forwarder.stop()
        if self.plane is not None:
            self.plane.stop()
            shutil.rmtree(self.plane.workdir, ignore_errors=True)
        with contextlib.suppress(Exception):
            run([require_tool("kube-proxy").as_posix(), "--cleanup"], check=False, timeout=60)
        _unmount_under(self.workdir)
        _unmount_under(CONTAINERD_ROOT)
        # The containers' logs outlive the node, for reading after a failed run.
        logs = ARTIFACTS / "node-pod-logs"
        shutil.rmtree(logs, ignore_errors=True)
        if (self.workdir / "pod-logs").is_dir():
            shutil.copytree(self.workdir / "pod-logs", logs, symlinks=False, ignore_dangling_symlinks=True)
        for name in _netns() - self.netns_before:
            run(["ip", "netns", "delete", name], check=False)
        _remove_host_network()
        for name, value in self.sysctls_before.items():
            run(["sysctl", "-q", "-w", f"{name}={value}"], check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.timings["stop"] = time.monotonic() - begin
        self._record_timings()

    def _delete_pods(self, timeout: float = 30) -> None:
        """Delete every namespace and pod, and give the kubelet a bounded time to stop their
        containers and sandboxes (CNI DEL, network namespace removal); whatever is left after
        that, stop() removes through containerd and by hand."""
        with self.api_client() as api:
            core = k8s.CoreV1Api(api)
            for namespace in core.list_namespace().items:
                name = namespace.metadata.name
                if not name.startswith("kube-") and name != "default":
                    with contextlib.suppress(k8s.ApiException):
                        core.delete_namespace(name)
            for pod in core.list_pod_for_all_namespaces().items:
                with contextlib.suppress(k8s.ApiException):
                    core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0)
        deadline = time.monotonic() + timeout
        while self._running_tasks() and time.monotonic() < deadline:
            time.sleep(0.5)

    def _running_tasks(self) -> list[str]:
        rows = [line.split() for line in self.ctr("tasks", "list", check=False).stdout.splitlines()[1:]]
        return [row[0] for row in rows if len(row) >= 3 and row[2] == "RUNNING"]

    def _remove_containers(self) -> None:
        """Whatever the kubelet left: kill and delete the tasks and containers through containerd."""
        for task in self.ctr("tasks", "list", "--quiet", check=False).stdout.split():
            self.ctr("tasks", "kill", "--signal", "SIGKILL", task, check=False)
        time.sleep(0.5)
        for task in self.ctr("tasks", "list", "--quiet", check=False).stdout.split():
            self.ctr("tasks", "delete", "--force", task, check=False)
        for container in self.ctr("containers", "list", "--quiet", check=False).stdout.split():
            self.ctr("containers", "delete", container, check=False)
        listed = self.ctr("snapshots", "--snapshotter", self.snapshotter, "list", check=False).stdout
        for snapshot in listed.splitlines()[1:]:
            # Containers' writable snapshots ("Active"); committed image layers stay.
            parts = snapshot.split()
            if len(parts) == 3 and parts[2] == "Active":
                self.ctr("snapshots", "--snapshotter", self.snapshotter, "remove", parts[0], check=False)


def _snapshotter() -> str:
    """overlayfs if the kernel mounts an overlay on the containerd root's file system, else native."""
    CONTAINERD_ROOT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CONTAINERD_ROOT.parent) as probe:
        for name in ("lower", "upper", "work", "merged"):
            (Path(probe) / name).mkdir()
        options = f"lowerdir={probe}/lower,upperdir={probe}/upper,workdir={probe}/work"
        mounted = run(["mount", "-t", "overlay", "overlay", "-o", options, f"{probe}/merged"], check=False)
        if mounted.returncode != 0:
            return "native"
        run(["umount", f"{probe}/merged"], check=False)
    return "overlayfs"


def _sysctl(name: str) -> str:
    return Path("/proc/sys", *name.split(".")).read_text().strip()


def _refuse_another_node() -> None:
    """Kubernetes' own chains without this fixture's bridge: a real node runs here; leave it alone."""
    if (
        not Path(f"/sys/class/net/{BRIDGE}").exists()
        and "-N KUBE-SERVICES" in run(["iptables", "-t", "nat", "-S"]).stdout
    ):
        raise RuntimeError(
            "this machine already runs a Kubernetes node (iptables chain KUBE-SERVICES exists): "
            "the pod tests' node would replace its rules; run them on a machine of their own (CI)"
        )


def _netns() -> set[str]:
    directory = Path("/var/run/netns")
    return {p.name for p in directory.iterdir()} if directory.is_dir() else set()


def _make_host_network() -> None:
    run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    run(["ip", "addr", "add", f"{GATEWAY_IP}/24", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])
    # ClusterIPs are only ever NATed on this machine: never route them to the default gateway.
    run(["ip", "route", "add", SERVICE_CIDR, "dev", BRIDGE, "src", GATEWAY_IP])


def _remove_host_network() -> None:
    run(["ip", "route", "delete", SERVICE_CIDR, "dev", BRIDGE], check=False)
    run(["ip", "link", "delete", BRIDGE], check=False)
    _remove_policy_diversion()
    _remove_kube_chains()


def _queue_bound(queue: int) -> bool:
    """Whether a process listens on netfilter queue `queue` (the kernel lists bound queues)."""
    with contextlib.suppress(OSError):
        return any(line.split()[:1] == [str(queue)] for line in NFQUEUE_STATUS.read_text().splitlines())
    return False


def _divert_to_policy_agent() -> None:
    """New pod connections to the agent's queue (see the module docstring for why iptables)."""
    table = ["iptables", "-t", "mangle"]
    run([*table, "-N", NETPOL_CHAIN])
    for rule in (
        ["-m", "owner", "--uid-owner", "0", "-j", "RETURN"],  # the node's own root processes
        ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"],
        ["-s", POD_CIDR, "-j", "NFQUEUE", "--queue-num", str(NETPOL_QUEUE)],
        ["-d", POD_CIDR, "-j", "NFQUEUE", "--queue-num", str(NETPOL_QUEUE)],
    ):
        run([*table, "-A", NETPOL_CHAIN, *rule])
    run([*table, "-A", "POSTROUTING", "-j", NETPOL_CHAIN])


def _remove_policy_diversion() -> None:
    table = ["iptables", "-t", "mangle"]
    while run([*table, "-D", "POSTROUTING", "-j", NETPOL_CHAIN], check=False).returncode == 0:
        pass
    run([*table, "-F", NETPOL_CHAIN], check=False)
    run([*table, "-X", NETPOL_CHAIN], check=False)


def _remove_kube_chains() -> None:
    """The KUBE-* chains (kube-proxy's, the kubelet's canaries) and the rules jumping to them."""
    for tool in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            rules = run([tool, "-t", table, "-S"], check=False).stdout.splitlines()
            for rule in rules:
                parts = rule.split()
                if parts[:1] == ["-A"] and not parts[1].startswith("KUBE-") and "-j" in parts:
                    target = parts[parts.index("-j") + 1]
                    if target.startswith("KUBE-"):
                        run([tool, "-t", table, "-D", *parts[1:]], check=False)
            chains = [r.split()[1] for r in rules if r.startswith("-N KUBE-")]
            for chain in chains:
                run([tool, "-t", table, "-F", chain], check=False)
            for chain in chains:
                run([tool, "-t", table, "-X", chain], check=False)


def _kill_shims(socket: Path) -> None:
    """containerd's shims outlive it by design: end the ones serving this node's containerd."""
    marker = str(socket).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes()
            if b"containerd-shim" in cmdline and marker in cmdline:
                os.kill(int(proc.name), signal.SIGKILL)


def _unmount_under(directory: Path) -> None:
    """Lazily unmount every mount below `directory`, deepest first (kubelet volumes, rootfs, shm)."""
    prefix = str(directory.resolve())
    mounts = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                mounts.append(point)
    for point in sorted(mounts, key=len, reverse=True):
        run(["umount", "--lazy", point], check=False)


def start_node() -> Node:
    node = Node(workdir=Path(tempfile.mkdtemp(prefix="mcp-node-")))
    try:
        node.start()
    except BaseException:
        node.stop()
        raise
    return node
