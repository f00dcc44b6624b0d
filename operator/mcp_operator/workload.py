"""The adapter workload an Upstream declares: NetworkPolicy, ConfigMap,
Deployment, Service.

Pure functions from the Upstream object to manifests; the reconciler applies
them. Every object carries an owner reference to the Upstream so the garbage
collector removes it with the Upstream, and the pod template carries a hash
of the config so a config change rolls the pods.

An adapter holds its tenant's upstream credentials and has no auth of its
own, so its NetworkPolicy admits only the gateway (which authenticates,
applies policy, limits and audit) and the operator (its readiness probe).
Kubelet probes are not affected: NetworkPolicy always allows a pod's own node.
"""

from __future__ import annotations

import hashlib
from typing import Any

import yaml

from mcp_operator import adapter_config, naming
from mcp_operator.settings import Settings

Obj = dict[str, Any]


def owner_reference(upstream: Obj) -> Obj:
    meta = upstream["metadata"]
    return {
        "apiVersion": naming.API_VERSION,
        "kind": "Upstream",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(upstream: Obj) -> Obj:
    meta = upstream["metadata"]
    return {
        "name": naming.adapter_name(meta["name"]),
        "namespace": meta["namespace"],
        "labels": naming.labels(meta["name"]),
        "ownerReferences": [owner_reference(upstream)],
    }


def config_text(inputs: adapter_config.AdapterInputs) -> str:
    return yaml.safe_dump(inputs.config, sort_keys=True)


def config_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def configmap(upstream: Obj, text: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(upstream),
        "data": {naming.ADAPTER_CONFIG_KEY: text},
    }


def _container(upstream: Obj, inputs: adapter_config.AdapterInputs, settings: Settings) -> Obj:
    spec = upstream["spec"]
    container: Obj = {
        "name": "adapter",
        "image": inputs.image or settings.adapter_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["mcp-adapter"],
        "args": [
            "--config",
            f"{naming.ADAPTER_CONFIG_DIR}/{naming.ADAPTER_CONFIG_KEY}",
            "--host",
            "0.0.0.0",
            "--port",
            str(naming.ADAPTER_PORT),
        ],
        "ports": [{"name": "mcp", "containerPort": naming.ADAPTER_PORT, "protocol": "TCP"}],
        "env": [*inputs.env, *settings.adapter_trace_env],
        "volumeMounts": [
            {"name": "config", "mountPath": naming.ADAPTER_CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - a private emptyDir, not a shared /tmp
            *inputs.mounts,
        ],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "mcp"}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "mcp"}, "periodSeconds": 20, "failureThreshold": 3},
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if spec.get("resources"):
        container["resources"] = spec["resources"]
    return container


def deployment(upstream: Obj, inputs: adapter_config.AdapterInputs, digest: str, settings: Settings) -> Obj:
    name = upstream["metadata"]["name"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(upstream),
        "spec": {
            "replicas": upstream["spec"].get("replicas", 1),
            "selector": {"matchLabels": naming.selector(name)},
            "template": {
                "metadata": {
                    "labels": naming.labels(name),
                    "annotations": {naming.CONFIG_HASH_ANNOTATION: digest},
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65532,
                        "runAsGroup": 65532,
                        "fsGroup": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [_container(upstream, inputs, settings)],
                    "volumes": [
                        {"name": "config", "configMap": {"name": naming.adapter_name(name)}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                        *inputs.volumes,
                    ],
                },
            },
        },
    }


def network_policy(upstream: Obj, settings: Settings) -> Obj:
    """Ingress to the adapter pods only from the gateway and operator pods (egress stays open: upstreams vary).

    Scrapers named by `--adapter-metrics-from` get a rule of their own: /metrics shares the MCP port.
    """
    peers = [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "podSelector": {"matchLabels": labels} if labels else {},
        }
        for namespace, labels in settings.adapter_clients
    ]
    port = [{"port": naming.ADAPTER_PORT, "protocol": "TCP"}]
    ingress = [{"from": peers, "ports": port}]
    if settings.adapter_metrics_from:
        ingress.append({"from": list(settings.adapter_metrics_from), "ports": port})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(upstream),
        "spec": {
            "podSelector": {"matchLabels": naming.selector(upstream["metadata"]["name"])},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }


def service(upstream: Obj) -> Obj:
    name = upstream["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(upstream),
        "spec": {
            "type": "ClusterIP",
            "selector": naming.selector(name),
            "ports": [{"name": "mcp", "port": naming.ADAPTER_PORT, "targetPort": "mcp", "protocol": "TCP"}],
        },
    }


def service_url(namespace: str, upstream: str, settings: Settings) -> str:
    """The adapter's MCP endpoint (what the gateway connects to and the probe asks)."""
    return settings.adapter_url_template.format(
        service=naming.adapter_name(upstream),
        namespace=namespace,
        name=upstream,
        port=naming.ADAPTER_PORT,
        cluster_domain=settings.cluster_domain,
    )
