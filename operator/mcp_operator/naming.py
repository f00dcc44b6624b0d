"""Names shared by the CRDs, the operator and the objects it creates."""

from __future__ import annotations

GROUP = "mcpgateway.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

TENANTS = "tenants"
PROFILES = "profiles"
UPSTREAMS = "upstreams"

FIELD_MANAGER = "mcp-operator"
COMPONENT = "mcp-operator"

MANAGED_BY = "app.kubernetes.io/managed-by"
UPSTREAM_LABEL = f"{GROUP}/upstream"
CONFIG_HASH_ANNOTATION = f"{GROUP}/config-hash"

ADAPTER_PORT = 8080
ADAPTER_CONFIG_KEY = "adapter.yaml"
ADAPTER_CONFIG_DIR = "/etc/mcp-adapter"
OPENAPI_SPEC_DIR = "/etc/mcp-openapi"


def adapter_name(upstream: str) -> str:
    """Name of the Deployment, Service, ConfigMap and NetworkPolicy serving `upstream` (the CRD keeps it <= 63)."""
    return f"{upstream}-adapter"


def labels(upstream: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "mcp-adapter",
        "app.kubernetes.io/instance": adapter_name(upstream),
        MANAGED_BY: COMPONENT,
        UPSTREAM_LABEL: upstream,
    }


def selector(upstream: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "mcp-adapter", UPSTREAM_LABEL: upstream}
