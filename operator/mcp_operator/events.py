"""Kubernetes Events for notable transitions (shown by `kubectl describe`)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from mcp_operator.conditions import now
from mcp_operator.kube import Kube, KubeError, collection_path

log = logging.getLogger("mcp_operator.events")

REPORTING_COMPONENT = "mcp-operator"


async def post(kube: Kube, obj: dict[str, Any], *, reason: str, message: str, warning: bool = False) -> None:
    """Record an Event about `obj`; failures are logged, never raised (events are best effort)."""
    meta = obj.get("metadata", {})
    # Cluster-scoped objects (Tenants) get their events in "default", as kubectl expects.
    namespace = meta.get("namespace") or "default"
    stamp = now()
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta.get('name', 'object')}.{uuid.uuid4().hex[:12]}", "namespace": namespace},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "reason": reason,
        "message": message[:1024],
        "type": "Warning" if warning else "Normal",
        "source": {"component": REPORTING_COMPONENT},
        "reportingComponent": REPORTING_COMPONENT,
        "reportingInstance": REPORTING_COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
    try:
        await kube.create(collection_path("v1", "events", namespace), event)
    except KubeError as exc:
        log.warning("could not record event %s on %s: %s", reason, meta.get("name"), exc)
