"""Helpers for operator tests and the operator benchmark: RBAC-bound
credentials, starting the operator, creating custom resources, waiting."""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from tests.support.kube import REPO, ControlPlane, write_kubeconfig

GROUP, VERSION = "mcpgateway.dev", "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CHART = REPO / "charts" / "mcp-gateway"
ROUTING_CONFIGMAP = "mcp-gateway-routing"  # what operator_command and Resources.routing use
ADAPTER_STUB = Path(__file__).resolve().parent / "adapter_stub.py"

T = TypeVar("T")


def wait_for(check: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.2, what: str = "") -> T:
    """Poll `check` until it returns something truthy; fail with the last value after `timeout`.

    An API error (e.g. a 404 before an object exists) means "not yet", never success: an
    exception object is truthy, so it is kept apart from the check's own results."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except ApiException as exc:
            last = exc
        else:
            if result:
                return result
            last = result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}; last value: {last!r}")


def render_rbac(namespace: str, release: str, watch_namespaces: list[str] | None = None) -> list[dict[str, Any]]:
    """The operator's ServiceAccount and RBAC exactly as the chart renders them (the one source of truth)."""
    from tests.chart.support import helm

    args = ["template", release, str(CHART), "--namespace", namespace]
    args += ["--show-only", "templates/operator/serviceaccount.yaml", "--show-only", "templates/operator/rbac.yaml"]
    args += ["--set", f"routing.configMapName={ROUTING_CONFIGMAP}"]
    if watch_namespaces:
        args += ["--set-json", f"operator.watchNamespaces={json.dumps(watch_namespaces)}"]
    result = helm(*args)
    assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def install_rbac(
    kube: ControlPlane,
    namespace: str,
    workdir: Path,
    watch_namespaces: list[str] | None = None,
    release: str | None = None,
) -> Path:
    """Create the chart's operator ServiceAccount (in `namespace`) and RBAC for `watch_namespaces`
    (none: cluster-wide), under `release` (default: a unique name), and return a kubeconfig that
    authenticates as that ServiceAccount."""
    release = release or f"op{uuid.uuid4().hex[:6]}"
    with kube.api_client() as api:
        rbac = k8s.RbacAuthorizationV1Api(api)
        core = k8s.CoreV1Api(api)
        account = ""
        for doc in render_rbac(namespace, release, watch_namespaces):
            kind, meta = doc["kind"], doc["metadata"]
            create = {
                "ServiceAccount": lambda d: core.create_namespaced_service_account(d["metadata"]["namespace"], d),
                "ClusterRole": rbac.create_cluster_role,
                "ClusterRoleBinding": rbac.create_cluster_role_binding,
                "Role": lambda d: rbac.create_namespaced_role(d["metadata"]["namespace"], d),
                "RoleBinding": lambda d: rbac.create_namespaced_role_binding(d["metadata"]["namespace"], d),
            }[kind]
            create(doc)
            if kind == "ServiceAccount":
                account = meta["name"]
        request = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=7200))
        token = core.create_namespaced_service_account_token(account, namespace, request).status.token
    return write_kubeconfig(workdir / f"operator-{release}.kubeconfig", kube.server, token, user=account)


def operator_command(
    kubeconfig: Path,
    *,
    namespaces: list[str],
    system_namespace: str,
    adapter_url_template: str,
    lease_name: str = "mcp-operator",
    extra: list[str] | None = None,
) -> list[str]:
    cmd = [sys.executable, "-m", "mcp_operator.cli", "--kubeconfig", str(kubeconfig)]
    for namespace in namespaces:
        cmd += ["--namespace", namespace]
    return [
        *cmd,
        "--routing-configmap", f"{system_namespace}/{ROUTING_CONFIGMAP}",
        "--lease", f"{system_namespace}/{lease_name}",
        "--lease-duration", "4",
        "--adapter-url-template", adapter_url_template,
        "--gateway-url", "http://gateway.test:8080",
        "--probe-interval", "1",
        "--probe-timeout", "2",
        "--resync-interval", "30",
        *(extra or []),
    ]  # fmt: skip


def adapter_stub_command(port: int) -> list[str]:
    return [sys.executable, str(ADAPTER_STUB), "--port", str(port)]


class Resources:
    """Create, read, patch and delete our custom resources through the real API server."""

    def __init__(self, api: k8s.ApiClient) -> None:
        self.api = api
        self.custom = k8s.CustomObjectsApi(api)
        self.core = k8s.CoreV1Api(api)
        self.apps = k8s.AppsV1Api(api)

    def tenant(self, name: str, namespaces: list[str], **spec: Any) -> dict[str, Any]:
        body = {"apiVersion": API_VERSION, "kind": "Tenant", "metadata": {"name": name}}
        body["spec"] = {"namespaces": namespaces, **spec}
        return self.custom.create_cluster_custom_object(GROUP, VERSION, "tenants", body)  # type: ignore[no-any-return]

    def create(self, plural: str, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        kind = {"upstreams": "Upstream", "profiles": "Profile"}[plural]
        body = {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)  # type: ignore[no-any-return]

    def get(self, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            if namespace is None:
                return self.custom.get_cluster_custom_object(GROUP, VERSION, plural, name)  # type: ignore[no-any-return]
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)  # type: ignore[no-any-return]
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def patch_spec(self, plural: str, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return self.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, {"spec": spec})  # type: ignore[no-any-return]

    def delete(self, plural: str, namespace: str | None, name: str) -> None:
        if namespace is None:
            self.custom.delete_cluster_custom_object(GROUP, VERSION, plural, name)
        else:
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)

    def condition(self, plural: str, namespace: str | None, name: str, type_: str = "Ready") -> dict[str, Any] | None:
        obj = self.get(plural, namespace, name) or {}
        return next((c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == type_), None)

    def routing(self, system_namespace: str) -> dict[str, Any]:
        try:
            cm = self.core.read_namespaced_config_map("mcp-gateway-routing", system_namespace)
        except ApiException as exc:
            if exc.status == 404:
                return {}
            raise
        return yaml.safe_load((cm.data or {}).get("routing.yaml") or "{}") or {}

    def routed_profile(self, system_namespace: str, profile_id: str) -> dict[str, Any] | None:
        return next((p for p in self.routing(system_namespace).get("profiles", []) if p["id"] == profile_id), None)

    def table(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        """What `kubectl get PLURAL` prints: the server-side Table, one {column: cell} per row."""
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}"
        accept = "application/json;as=Table;v=v1;g=meta.k8s.io"
        response = self.api.call_api(
            *self.api.param_serialize("GET", path, header_params={"Accept": accept}, auth_settings=["BearerToken"])
        )
        response.read()
        table = json.loads(response.data)
        names = [c["name"] for c in table["columnDefinitions"]]
        return [dict(zip(names, row["cells"], strict=True)) for row in table["rows"]]

    def events(self, namespace: str, name: str) -> list[tuple[str, str, str]]:
        items = self.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
        return [(e.reason, e.type, e.message) for e in items]

    def wait_event(
        self, namespace: str, name: str, reason: str, kind: str | None = None, timeout: float = 30.0
    ) -> list[tuple[str, str, str]]:
        """Wait until an Event with `reason` (and `kind`: Normal/Warning) is filed about `name`; return all its Events.

        Kopf posts Events from a queue of its own, so one may land after the status it follows."""

        def found() -> list[tuple[str, str, str]] | None:
            events = self.events(namespace, name)
            hit = any(r == reason and (kind is None or t == kind) for r, t, _ in events)
            return events if hit else None

        return wait_for(found, timeout=timeout, what=f"a {kind or ''} {reason!r} Event about {namespace}/{name}")
