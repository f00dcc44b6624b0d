"""A small async facade over the kubernetes client for any kind, by REST path.

Every write is idempotent: objects are created or updated with server-side
apply (one field manager, forced), so a restart mid-reconcile converges
instead of duplicating, and hand edits to fields we own are reverted.
The client is synchronous; calls run in worker threads.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from mcp_operator.naming import FIELD_MANAGER

Obj = dict[str, Any]

# apiVersion/kind -> (path prefix, plural); enough for what the operator touches.
_KINDS: dict[tuple[str, str], tuple[str, str]] = {
    ("v1", "ConfigMap"): ("/api/v1", "configmaps"),
    ("v1", "Service"): ("/api/v1", "services"),
    ("v1", "Event"): ("/api/v1", "events"),
    ("apps/v1", "Deployment"): ("/apis/apps/v1", "deployments"),
    ("networking.k8s.io/v1", "NetworkPolicy"): ("/apis/networking.k8s.io/v1", "networkpolicies"),
    ("coordination.k8s.io/v1", "Lease"): ("/apis/coordination.k8s.io/v1", "leases"),
}


class KubeError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"HTTP {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def collection_path(api_version: str, plural: str, namespace: str | None) -> str:
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"


def object_path(api_version: str, plural: str, namespace: str | None, name: str) -> str:
    return f"{collection_path(api_version, plural, namespace)}/{name}"


def path_of(obj: Obj) -> str:
    prefix, plural = _KINDS[(obj["apiVersion"], obj["kind"])]
    meta = obj["metadata"]
    namespace = meta.get("namespace")
    base = f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"
    return f"{base}/{meta['name']}"


def load_api_client(kubeconfig: str | None) -> k8s.ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig (file or $KUBECONFIG)."""
    if kubeconfig:
        return k8s_config.new_client_from_config(config_file=kubeconfig)
    try:
        configuration = k8s.Configuration()
        k8s_config.load_incluster_config(client_configuration=configuration)
        return k8s.ApiClient(configuration)
    except k8s_config.ConfigException:
        return k8s_config.new_client_from_config()


@dataclass
class Kube:
    api: k8s.ApiClient
    timeout: float = 20.0

    def _request_sync(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Obj | None:
        request = self.api.param_serialize(
            method,
            path,
            query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*request, _request_timeout=self.timeout)
        response.read()
        raw = response.data or b""
        if not 200 <= response.status < 300:
            raise _error(response.status, raw)
        return json.loads(raw) if raw else None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Obj | None:
        return await asyncio.to_thread(
            self._request_sync, method, path, body=body, query=query, content_type=content_type
        )

    async def get(self, path: str) -> Obj | None:
        """The object, or None when it does not exist."""
        try:
            return await self.request("GET", path)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, path: str, label_selector: str | None = None) -> list[Obj]:
        items: list[Obj] = []
        cont = ""
        for _ in range(10_000):  # pages of 500; bounded
            query = [("limit", "500")]
            if label_selector:
                query.append(("labelSelector", label_selector))
            if cont:
                query.append(("continue", cont))
            page = await self.request("GET", path, query=query) or {}
            items += page.get("items") or []
            cont = (page.get("metadata") or {}).get("continue") or ""
            if not cont:
                break
        return items

    async def apply(self, obj: Obj) -> Obj:
        """Server-side apply `obj` (create or update); returns the live object."""
        result = await self.request(
            "PATCH",
            path_of(obj),
            body=obj,
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )
        return result or {}

    async def patch_status(self, path: str, status: Obj) -> Obj | None:
        """Merge-patch the status subresource; None when the object is gone."""
        try:
            return await self.request(
                "PATCH", f"{path}/status", body={"status": status}, content_type="application/merge-patch+json"
            )
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    async def create(self, collection: str, obj: Obj) -> Obj | None:
        return await self.request("POST", collection, body=obj)


def _error(status: int, raw: bytes) -> KubeError:
    try:
        body = json.loads(raw)
        return KubeError(status, str(body.get("reason", "")), str(body.get("message", "")))
    except ValueError:
        return KubeError(status, "", raw[:500].decode(errors="replace"))
