"""Operator settings, from command-line flags with environment fallbacks."""

from __future__ import annotations

import argparse
import json
import os
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

from mcp_gateway.config import GatewaySettings
from pydantic import ValidationError

DEFAULT_IMAGE = "ghcr.io/mcp-gateway/mcp-adapter:0.1.0"
DEFAULT_ADAPTER_URL = "http://{service}.{namespace}.svc.{cluster_domain}:{port}/mcp"
# Pod labels of the chart's gateway and operator (the chart passes its release's exact labels).
Labels = tuple[tuple[str, str], ...]
DEFAULT_GATEWAY_PODS: Labels = (("app.kubernetes.io/name", "mcp-gateway"), ("app.kubernetes.io/component", "gateway"))
DEFAULT_OPERATOR_PODS: Labels = (("app.kubernetes.io/name", "mcp-gateway"), ("app.kubernetes.io/component", "operator"))


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
    # Who may reach adapter pods (each Upstream's NetworkPolicy): the gateway, and the operator for its probe.
    # Empty namespaces mean the routing ConfigMap's (gateway) and the Lease's (operator) namespace.
    gateway_namespace: str = ""
    gateway_pod_labels: Labels = DEFAULT_GATEWAY_PODS
    operator_namespace: str = ""
    operator_pod_labels: Labels = DEFAULT_OPERATOR_PODS
    # The operator's own Deployment (in operator_namespace): owner of the routing ConfigMap and the Lease.
    owner_deployment: str = ""
    log_level: str = "INFO"
    # The routing config's `gateway:` section (allowPrivateJwks, allowedOrigins...), rendered as given.
    gateway_settings: dict[str, Any] = field(default_factory=dict)
    # OpenTelemetry for the adapters (OTLP/HTTP base URL; empty: no tracing) and their sampling ratio.
    adapter_otlp_endpoint: str = ""
    adapter_trace_sampling_ratio: float = 1.0
    # NetworkPolicyPeers (e.g. Prometheus' pods) also let in to scrape adapters' /metrics, on their one port.
    adapter_metrics_from: tuple[dict[str, Any], ...] = ()

    @property
    def adapter_trace_env(self) -> list[dict[str, str]]:
        """The standard OTEL_* variables of each adapter container ([] while tracing is off)."""
        if not self.adapter_otlp_endpoint:
            return []
        return [
            {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": self.adapter_otlp_endpoint},
            {"name": "OTEL_TRACES_SAMPLER", "value": "parentbased_traceidratio"},
            {"name": "OTEL_TRACES_SAMPLER_ARG", "value": f"{self.adapter_trace_sampling_ratio:g}"},
        ]

    @property
    def routing_ref(self) -> str:
        return f"{self.routing_namespace}/{self.routing_name}"

    @property
    def adapter_clients(self) -> list[tuple[str, dict[str, str]]]:
        """(namespace, pod labels) of the pods that may call adapters: the gateway, then the operator."""
        return [
            (self.gateway_namespace or self.routing_namespace, dict(self.gateway_pod_labels)),
            (self.operator_namespace or self.lease_namespace, dict(self.operator_pod_labels)),
        ]


def _join(labels: Labels) -> str:
    return ",".join(f"{k}={v}" for k, v in labels)


def parse_labels(text: str, flag: str = "label selector") -> Labels:
    """`k=v,k2=v2` (equality only, like a NetworkPolicy's matchLabels); empty means every pod."""
    pairs = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or "!" in key:
            raise SystemExit(f"mcp-operator: {flag} must look like key=value,key2=value2, got {text!r}")
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def parse_gateway_settings(text: str) -> dict[str, Any]:
    """`--gateway-settings`: a JSON object the gateway accepts as its routing config's `gateway:` section."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        GatewaySettings.model_validate(value)
    except (ValueError, ValidationError) as exc:
        raise SystemExit(
            f"mcp-operator: --gateway-settings must be a JSON object of the routing config's gateway settings, "
            f'e.g. {{"allowPrivateJwks": true}} (see docs/routing-config.md): {exc}'
        ) from None
    return value


def parse_peers(text: str) -> tuple[dict[str, Any], ...]:
    """`--adapter-metrics-from`: a JSON list of NetworkPolicyPeers (empty: only the gateway and the operator)."""
    if not text.strip():
        return ()
    try:
        peers = json.loads(text)
    except ValueError as exc:
        raise SystemExit(f"mcp-operator: --adapter-metrics-from must be JSON: {exc}") from None
    known = {"namespaceSelector", "podSelector", "ipBlock"}
    if not isinstance(peers, list) or not all(isinstance(p, dict) and p and set(p) <= known for p in peers):
        raise SystemExit(
            "mcp-operator: --adapter-metrics-from must be a JSON list of NetworkPolicyPeers, e.g. "
            '[{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]'
        )
    return tuple(peers)


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
    parser.add_argument(
        "--gateway-namespace",
        default=_env("GATEWAY_NAMESPACE", ""),
        help="namespace of the gateway pods allowed to reach adapters; default: the routing ConfigMap's",
    )
    parser.add_argument(
        "--gateway-pod-selector",
        default=_env("GATEWAY_POD_SELECTOR", _join(d.gateway_pod_labels)),
        help="labels (k=v,...) of the gateway pods allowed to reach adapters",
    )
    parser.add_argument(
        "--operator-namespace",
        default=_env("OPERATOR_NAMESPACE", ""),
        help="namespace of the operator pods (probing adapters); default: the Lease's",
    )
    parser.add_argument(
        "--operator-pod-selector",
        default=_env("OPERATOR_POD_SELECTOR", _join(d.operator_pod_labels)),
        help="labels (k=v,...) of the operator pods, allowed to probe adapters",
    )
    parser.add_argument(
        "--gateway-settings",
        default=_env("GATEWAY_SETTINGS", ""),
        help='JSON of the routing config\'s gateway section, e.g. {"allowPrivateJwks": true}',
    )
    parser.add_argument(
        "--owner-deployment",
        default=_env("OWNER_DEPLOYMENT", ""),
        help="name of the operator's own Deployment (in --operator-namespace); it becomes the owner of the "
        "routing ConfigMap and the Lease, so deleting it (helm uninstall) deletes them",
    )
    parser.add_argument(
        "--adapter-otlp-endpoint",
        default=_env("ADAPTER_OTLP_ENDPOINT", ""),
        help="OTLP/HTTP base URL the adapters export traces to (OTEL_EXPORTER_OTLP_ENDPOINT); empty: no tracing",
    )
    parser.add_argument(
        "--adapter-trace-sampling-ratio",
        type=float,
        default=float(_env("ADAPTER_TRACE_SAMPLING_RATIO", "1.0")),
        help="share of the traces an adapter starts that it records (parent-based), 0 to 1",
    )
    parser.add_argument(
        "--adapter-metrics-from",
        default=_env("ADAPTER_METRICS_FROM", ""),
        help="JSON list of NetworkPolicyPeers (e.g. Prometheus' namespace and pods) let into each adapter's "
        "NetworkPolicy to scrape /metrics; they reach the adapter's one port, /mcp included",
    )
    parser.add_argument("--health-port", type=int, default=int(_env("HEALTH_PORT", "0")))
    parser.add_argument("--log-level", default=_env("LOG_LEVEL", d.log_level))
    args = parser.parse_args(argv)
    endpoint = args.adapter_otlp_endpoint.strip().rstrip("/")
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise SystemExit(f"mcp-operator: --adapter-otlp-endpoint must be an http:// or https:// URL, not {endpoint!r}")
    if not 0 <= args.adapter_trace_sampling_ratio <= 1:
        raise SystemExit("mcp-operator: --adapter-trace-sampling-ratio must be between 0 and 1")
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
        gateway_namespace=args.gateway_namespace or routing_namespace,
        gateway_pod_labels=parse_labels(args.gateway_pod_selector, "--gateway-pod-selector"),
        operator_namespace=args.operator_namespace or lease_namespace,
        operator_pod_labels=parse_labels(args.operator_pod_selector, "--operator-pod-selector"),
        gateway_settings=parse_gateway_settings(args.gateway_settings),
        owner_deployment=args.owner_deployment,
        adapter_otlp_endpoint=endpoint,
        adapter_metrics_from=parse_peers(args.adapter_metrics_from),
        adapter_trace_sampling_ratio=args.adapter_trace_sampling_ratio,
    )
