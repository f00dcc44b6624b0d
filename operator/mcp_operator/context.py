"""What every handler needs, shared through kopf's `memo`."""

from __future__ import annotations

from dataclasses import dataclass

from mcp_operator.kube import Kube
from mcp_operator.monitor import UpstreamMonitor
from mcp_operator.ownership import Owner
from mcp_operator.publisher import RoutingPublisher
from mcp_operator.settings import Settings
from mcp_operator.upstreams import UpstreamReconciler


@dataclass
class OperatorContext:
    settings: Settings
    kube: Kube
    reconciler: UpstreamReconciler
    publisher: RoutingPublisher
    monitor: UpstreamMonitor

    @classmethod
    def create(cls, settings: Settings, kube: Kube, owner: Owner | None = None) -> OperatorContext:
        publisher = RoutingPublisher(kube, settings, owner)
        reconciler = UpstreamReconciler(kube, settings, on_status=publisher.poke)
        return cls(settings, kube, reconciler, publisher, UpstreamMonitor(kube, settings, reconciler))
