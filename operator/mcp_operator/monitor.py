"""Periodic pass over all Upstreams: probe each adapter (tool count, Ready),
and re-apply workloads whose spec changed or whose resync is due.

One loop for all Upstreams rather than a kopf timer per object: kopf timers
would put a finalizer on every Upstream, and a bounded pool keeps hundreds of
probes from stampeding the API server.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mcp_operator import metrics, naming, scope
from mcp_operator.kube import Kube
from mcp_operator.settings import Settings
from mcp_operator.upstreams import UpstreamReconciler, needs_apply

log = logging.getLogger("mcp_operator.monitor")

CONCURRENCY = 16


class UpstreamMonitor:
    def __init__(self, kube: Kube, settings: Settings, reconciler: UpstreamReconciler) -> None:
        self.kube = kube
        self.settings = settings
        self.reconciler = reconciler
        self._limit = asyncio.Semaphore(CONCURRENCY)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.probe_interval)
            try:
                await self.pass_once()
            except Exception as exc:
                log.error("upstream monitor pass failed: %s", exc)

    async def pass_once(self) -> None:
        targets = await scope.list_watched(self.kube, self.settings, naming.UPSTREAMS)
        await asyncio.gather(*(self._one(u) for u in targets))

    async def _one(self, upstream: dict[str, Any]) -> None:
        meta = upstream["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        apply = needs_apply(upstream) or self.reconciler.resync_due(namespace, name)
        async with self._limit:
            try:
                await self.reconciler.reconcile(namespace, name, apply=apply, check=True)
                metrics.reconciled("upstream", ok=True)
            except Exception as exc:
                metrics.reconciled("upstream", ok=False)
                log.warning("reconciling upstream %s/%s failed: %s", namespace, name, exc)
