"""Publish the routing ConfigMap and Profile/Tenant statuses.

Any change to a Tenant, Profile or Upstream pokes the publisher; it waits a
moment so a burst of changes becomes one render, lists the current objects
from the API server (so it is always complete, also right after a restart)
and writes the ConfigMap only when its content changed. Gateways watch that
ConfigMap and reload within a second or two.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import yaml

from mcp_operator import conditions, events, metrics, naming, ownership, routing, scope
from mcp_operator.kube import Kube, KubeError, collection_path, object_path
from mcp_operator.settings import Settings

log = logging.getLogger("mcp_operator.publisher")

ROUTING_KEY = "routing.yaml"
API = naming.API_VERSION


def routing_configmap(settings: Settings, text: str, owners: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": settings.routing_name,
        "namespace": settings.routing_namespace,
        "labels": {naming.MANAGED_BY: naming.COMPONENT, "app.kubernetes.io/component": "routing"},
    }
    if owners:
        meta["ownerReferences"] = owners
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {ROUTING_KEY: text}}


class RoutingPublisher:
    def __init__(self, kube: Kube, settings: Settings, owner: ownership.Owner | None = None) -> None:
        self.kube = kube
        self.settings = settings
        self.owners = ownership.references(owner, settings.routing_namespace)
        self._wake = asyncio.Event()
        self.renders = 0

    def poke(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Render on every poke, and at least every resync interval, until cancelled."""
        self.poke()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.resync_interval)
            await asyncio.sleep(self.settings.render_debounce)
            self._wake.clear()
            try:
                await self.publish_once()
                metrics.reconciled("routing", ok=True)
            except Exception as exc:
                metrics.reconciled("routing", ok=False)
                log.error("publishing routing failed: %s; retrying in 2s", exc, exc_info=not isinstance(exc, KubeError))
                await asyncio.sleep(2)
                self.poke()

    async def publish_once(self) -> None:
        tenants = await self.kube.list(collection_path(API, naming.TENANTS, None))
        profiles = await scope.list_watched(self.kube, self.settings, naming.PROFILES)
        upstreams = await scope.list_watched(self.kube, self.settings, naming.UPSTREAMS)
        rendered = routing.render(tenants, profiles, upstreams, self.settings)
        self.renders += 1
        text = yaml.safe_dump(rendered.document, sort_keys=False)
        # Compare with the live object, not a cache: a deleted or hand-edited ConfigMap is repaired too.
        live = await self.kube.get(
            object_path("v1", "configmaps", self.settings.routing_namespace, self.settings.routing_name)
        )
        current = ((live or {}).get("data") or {}).get(ROUTING_KEY)
        # The owner check also adopts a ConfigMap written before --owner-deployment was set.
        if current != text or not ownership.carries((live or {}).get("metadata") or {}, self.owners):
            await self.kube.apply(routing_configmap(self.settings, text, self.owners))
            log.info(
                "published routing to ConfigMap %s: %d tenants, %d profiles",
                self.settings.routing_ref,
                len(rendered.document["tenants"]),
                len(rendered.document["profiles"]),
            )
        for (namespace, name), status in rendered.profiles.items():
            await self._write(object_path(API, naming.PROFILES, namespace, name), status)
        for name, status in rendered.tenants.items():
            await self._write(object_path(API, naming.TENANTS, None, name), status)

    async def _write(self, path: str, wanted: routing.ObjectStatus) -> None:
        obj = wanted.obj
        current = obj.get("status") or {}
        generation = int(obj["metadata"].get("generation", 0))
        status = {
            "observedGeneration": generation,
            **wanted.fields,
            "conditions": conditions.merge(current.get("conditions"), wanted.conditions, generation),
        }
        if conditions.status_without_times(status) == conditions.status_without_times(
            {k: current.get(k) for k in status}
        ):
            return
        await self.kube.patch_status(path, status)
        ready = wanted.ready
        if conditions.transition(current.get("conditions"), ready):
            log.info("%s %s Ready=%s (%s)", obj["kind"], obj["metadata"]["name"], ready.status, ready.reason)
            await events.post(self.kube, obj, reason=ready.reason, message=ready.message, warning=not ready.ready)
