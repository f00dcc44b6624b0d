"""Owner references to the operator's own Deployment (`--owner-deployment`), so that deleting
it (`helm uninstall`) garbage-collects what the operator created beside it: the routing
ConfigMap and the leader-election Lease.

Kubernetes resolves an owner reference in the *dependent's* namespace. A reference to a
Deployment in another namespace would look dangling, and the garbage collector would delete
the dependent at once, so objects outside the Deployment's namespace get no reference.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from mcp_operator.kube import Kube, KubeError, object_path
from mcp_operator.settings import Settings

log = logging.getLogger("mcp_operator.ownership")


@dataclass(frozen=True)
class Owner:
    namespace: str
    reference: dict[str, Any]

    def references(self, namespace: str) -> list[dict[str, Any]]:
        """The owner references for an object in `namespace` (none outside the owner's namespace)."""
        return [dict(self.reference)] if namespace == self.namespace else []


def references(owner: Owner | None, namespace: str) -> list[dict[str, Any]]:
    return owner.references(namespace) if owner else []


def carries(meta: dict[str, Any], wanted: list[dict[str, Any]]) -> bool:
    """True when the object's metadata already holds every wanted owner reference (by uid)."""
    present = {ref.get("uid") for ref in meta.get("ownerReferences") or []}
    return all(ref["uid"] in present for ref in wanted)


async def resolve(kube: Kube, settings: Settings) -> Owner | None:
    """The operator's Deployment as an owner, or None (with a warning saying what is lost)."""
    name, namespace = settings.owner_deployment, settings.operator_namespace or settings.lease_namespace
    if not name:
        return None
    consequence = "the routing ConfigMap and the Lease get no owner and outlive an uninstall"
    try:
        deployment = await kube.get(object_path("apps/v1", "deployments", namespace, name))
    except KubeError as exc:
        log.warning("cannot read owner Deployment %s/%s (%s); %s", namespace, name, exc, consequence)
        return None
    if deployment is None:
        log.warning("owner Deployment %s/%s does not exist; %s", namespace, name, consequence)
        return None
    for what, other in (("routing ConfigMap", settings.routing_namespace), ("Lease", settings.lease_namespace)):
        if other != namespace:
            log.warning(
                "the %s is in namespace %s, not in the owner Deployment's %s: it gets no owner reference "
                "(owners must share the namespace) and outlives an uninstall",
                what,
                other,
                namespace,
            )
    meta = deployment["metadata"]
    reference = {"apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"], "uid": meta["uid"]}
    log.info("objects in namespace %s are owned by Deployment %s (uid %s)", namespace, name, meta["uid"])
    return Owner(namespace, reference)
