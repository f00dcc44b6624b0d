"""Operator settings, from command-line flags with environment fallbacks."""

from __future__ import annotations

import argparse
import os
import socket
import uuid
from dataclasses import dataclass, field

DEFAULT_IMAGE = "ghcr.io/mcp-gateway/mcp-adapter:0.1.0"
DEFAULT_ADAPTER_URL = "http://{service}.{namespace}.svc.{cluster_domain}:{port}/mcp"


@dataclass(frozen=True)
class Settings:
    kubeconfig: str | None = None
    namespaces: tuple[str, ...] = ()  # empty: the whole cluster; globs allowed ("team-*")
    adapter_image: str = DEFAULT_IMAGE
    image_pull_policy: str = "IfNotPresent"
    cluster_domain: str = "cluster.local"
    routing_namespace: str = "mcp-system"
    routing_name: str = "mcp-gateway-routing"
    gateway_url: str = "http://mcp-gateway.mcp-system.svc.cluster.local:8080"
    # Where the gateway and the probe reach an adapter; {service} {namespace} {name} {port}
    # {cluster_domain} are filled in. The default is the adapter Service's cluster DNS name.
    adapter_url_template: str = DEFAULT_ADAPTER_URL
    probe_interval: float = 15.0
    probe_timeout: float = 5.0
    resync_interval: float = 300.0
    render_debounce: float = 0.2
    leader_election: bool = True
    lease_namespace: str = "mcp-system"
    lease_name: str = "mcp-operator"
    lease_duration: float = 15.0
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}")
    health_port: int = 0  # 0: no health endpoint
    log_level: str = "INFO"

    @property
    def routing_ref(self) -> str:
        return f"{self.routing_namespace}/{self.routing_name}"


def _env(name: str, default: str) -> str:
    return os.environ.get(f"MCP_OPERATOR_{name}", default)


def _split_ref(ref: str) -> tuple[str, str]:
    namespace, sep, name = ref.partition("/")
    if not sep or not namespace or not name:
        raise SystemExit(f"mcp-operator: --routing-configmap must be NAMESPACE/NAME, got {ref!r}")
    return namespace, name


def parse(argv: list[str] | None = None) -> Settings:
    d = Settings()
    parser = argparse.ArgumentParser(
        prog="mcp-operator",
        description="Reconciles Tenant, Profile and Upstream resources into adapter workloads and gateway routing. "
        "Every flag also reads MCP_OPERATOR_<FLAG> (upper case, '-' -> '_').",
    )
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG") or None)
    parser.add_argument(
        "--namespace", action="append", default=None, help="namespace (or glob) to watch; repeat; default: all"
    )
    parser.add_argument("--adapter-image", default=_env("ADAPTER_IMAGE", d.adapter_image))
    parser.add_argument("--image-pull-policy", default=_env("IMAGE_PULL_POLICY", d.image_pull_policy))
    parser.add_argument("--cluster-domain", default=_env("CLUSTER_DOMAIN", d.cluster_domain))
    parser.add_argument(
        "--routing-configmap", default=_env("ROUTING_CONFIGMAP", d.routing_ref), help="NAMESPACE/NAME it renders"
    )
    parser.add_argument("--gateway-url", default=_env("GATEWAY_URL", d.gateway_url), help="base URL shown in status")
    parser.add_argument(
        "--adapter-url-template",
        default=_env("ADAPTER_URL_TEMPLATE", d.adapter_url_template),
        help="URL of an adapter's MCP endpoint, for routing and probes; placeholders: "
        "{service} {namespace} {name} {port} {cluster_domain}",
    )
    parser.add_argument("--probe-interval", type=float, default=float(_env("PROBE_INTERVAL", str(d.probe_interval))))
    parser.add_argument("--probe-timeout", type=float, default=float(_env("PROBE_TIMEOUT", str(d.probe_timeout))))
    parser.add_argument("--resync-interval", type=float, default=float(_env("RESYNC_INTERVAL", str(d.resync_interval))))
    parser.add_argument("--no-leader-election", action="store_true", default=_env("LEADER_ELECTION", "true") == "false")
    parser.add_argument(
        "--lease", default=_env("LEASE", f"{d.lease_namespace}/{d.lease_name}"), help="NAMESPACE/NAME of the Lease"
    )
    parser.add_argument("--lease-duration", type=float, default=float(_env("LEASE_DURATION", str(d.lease_duration))))
    parser.add_argument("--health-port", type=int, default=int(_env("HEALTH_PORT", "0")))
    parser.add_argument("--log-level", default=_env("LOG_LEVEL", d.log_level))
    args = parser.parse_args(argv)
    env_namespaces = [n for n in _env("NAMESPACES", "").replace(",", " ").split() if n]
    routing_namespace, routing_name = _split_ref(args.routing_configmap)
    lease_namespace, lease_name = _split_ref(args.lease)
    return Settings(
        kubeconfig=args.kubeconfig,
        namespaces=tuple(args.namespace or env_namespaces),
        adapter_image=args.adapter_image,
        image_pull_policy=args.image_pull_policy,
        cluster_domain=args.cluster_domain,
        routing_namespace=routing_namespace,
        routing_name=routing_name,
        gateway_url=args.gateway_url.rstrip("/"),
        adapter_url_template=args.adapter_url_template,
        probe_interval=args.probe_interval,
        probe_timeout=args.probe_timeout,
        resync_interval=args.resync_interval,
        leader_election=not args.no_leader_election,
        lease_namespace=lease_namespace,
        lease_name=lease_name,
        lease_duration=args.lease_duration,
        health_port=args.health_port,
        log_level=args.log_level.upper(),
    )
