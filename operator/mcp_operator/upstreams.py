"""Reconcile one Upstream: apply its adapter workload, probe the adapter,
write status (conditions with observedGeneration, tool count) and Events.

Level-triggered and idempotent: every call reads the Upstream fresh and
server-side-applies the full desired state, so it may run any number of
times, after a crash or concurrently with a hand edit, and converge.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from mcp_operator import adapter_config, conditions, events, naming, probe, upstream_health, workload
from mcp_operator.conditions import Condition
from mcp_operator.kube import Kube, KubeError, object_path
from mcp_operator.settings import Settings

log = logging.getLogger("mcp_operator.upstreams")

Obj = dict[str, Any]

OWNED_KINDS = ("NetworkPolicy", "ConfigMap", "Deployment", "Service")


def upstream_path(namespace: str, name: str) -> str:
    return object_path(naming.API_VERSION, naming.UPSTREAMS, namespace, name)


def needs_apply(upstream: dict[str, Any]) -> bool:
    """The spec changed since we last applied it (or we never did)."""
    status = upstream.get("status") or {}
    return status.get("observedGeneration") != upstream["metadata"].get("generation") or not status.get("configHash")


class UpstreamReconciler:
    def __init__(self, kube: Kube, settings: Settings, on_status: Callable[[], None] | None = None) -> None:
        self.kube = kube
        self.settings = settings
        self.on_status = on_status or (lambda: None)
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        # (kind, ns, name) -> (resourceVersion, generation) of our last write
        self._applied: dict[tuple[str, str, str], tuple[str, int]] = {}
        self._last_apply: dict[tuple[str, str], float] = {}
        # (ns, name) -> config hash last applied here: the body a handler gets may predate our own
        # status write, so its `configHash` alone would call an update a creation (or miss it).
        self._applied_hash: dict[tuple[str, str], str] = {}
        self.health = upstream_health.HealthTracker()

    def _lock(self, key: tuple[str, str]) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        self._locks.pop(key, None)
        self._last_apply.pop(key, None)
        self._applied_hash.pop(key, None)
        self.health.forget(key)
        for kind in OWNED_KINDS:
            self._applied.pop((kind, namespace, naming.adapter_name(name)), None)

    def resync_due(self, namespace: str, name: str) -> bool:
        last = self._last_apply.get((namespace, name))
        return last is None or time.monotonic() - last >= self.settings.resync_interval

    def is_own_write(self, obj: Obj) -> bool:
        """Whether a watch event on an owned object is our own last write echoing back, or for kinds with a
        generation (Deployment, NetworkPolicy) a status-only change since (the spec is still ours)."""
        meta = obj.get("metadata", {})
        key = (obj.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""))
        written = self._applied.get(key)
        if written is None or not meta.get("resourceVersion"):
            return False
        version, generation = written
        return meta["resourceVersion"] == version or (generation > 0 and meta.get("generation") == generation)

    async def reconcile(self, namespace: str, name: str, *, apply: bool = True, check: bool = True) -> None:
        """Bring Upstream namespace/name to its declared state; `check` also probes and writes status."""
        async with self._lock((namespace, name)):
            upstream = await self.kube.get(upstream_path(namespace, name))
            if upstream is None or upstream["metadata"].get("deletionTimestamp"):
                self.forget(namespace, name)
                return  # the garbage collector removes the workload via owner references
            # The caller judged `apply` on an older copy (the monitor's list): a spec changed since
            # is applied now, so the status never reports a generation whose workload is not there.
            await self._reconcile(upstream, apply=apply or needs_apply(upstream), check=check)

    async def repair(self, namespace: str, name: str, changed: Obj, deleted: bool) -> None:
        """An owned object was deleted or edited by someone else: re-apply and record an Event if it drifted."""
        meta = changed.get("metadata", {})
        key = (changed.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""))
        async with self._lock((namespace, name)):
            if not deleted and self.is_own_write(changed):
                return  # the event overtook the answer to our own apply, recorded meanwhile
            upstream = await self.kube.get(upstream_path(namespace, name))
            if upstream is None or upstream["metadata"].get("deletionTimestamp"):
                return
            before = self._applied.get(key)
            await self._reconcile(upstream, apply=True, check=False)
            after = self._applied.get(key)
        # Our apply changed the object (a new generation, or a new version for kinds without one) only if
        # it had drifted; a stale event about a state already repaired re-applies as a no-op.
        if deleted or _changed(before, after):
            what = "deleted" if deleted else "changed by someone else"
            message = f"{key[0]} {key[2]} was {what}; restored it as declared"
            log.info(message, extra={"upstream": f"{namespace}/{name}"})
            await events.post(self.kube, upstream, reason="DriftRepaired", message=message)

    async def _reconcile(self, upstream: Obj, *, apply: bool, check: bool) -> dict[str, Obj]:
        meta = upstream["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        try:
            inputs = adapter_config.build(name, namespace, upstream.get("spec", {}))
        except (KeyError, ValueError, TypeError, StopIteration) as exc:
            await self._write_status(upstream, Condition("Ready", False, "InvalidSpec", f"spec cannot be used: {exc}"))
            return {}
        text = workload.config_text(inputs)
        digest = workload.config_hash(text)
        live: dict[str, Obj] = {}
        if apply:
            try:
                live = await self._apply(upstream, inputs, text, digest)
            except KubeError as exc:
                message = f"could not apply the adapter workload: {exc.message or exc}"
                await self._write_status(upstream, Condition("Ready", False, "ApplyFailed", message), digest=digest)
                raise
            self._last_apply[(namespace, name)] = time.monotonic()
            previous = self._applied_hash.get((namespace, name)) or (upstream.get("status") or {}).get("configHash")
            self._applied_hash[(namespace, name)] = digest
            if previous != digest:
                verb = "Created" if previous is None else "Updated"
                await events.post(
                    self.kube,
                    upstream,
                    reason=verb,
                    message=f"{verb.lower()} adapter Deployment, Service, ConfigMap and NetworkPolicy "
                    f"{naming.adapter_name(name)} (config {digest})",
                )
        if check:
            condition, tools, result = await self._readiness(upstream, live.get("Deployment"))
            previous = conditions.find((upstream.get("status") or {}).get("conditions"), upstream_health.HEALTHY)
            healthy = self.health.judge((namespace, name), upstream.get("spec") or {}, previous, result)
            await self._write_status(upstream, condition, healthy=healthy, digest=digest, tool_count=tools)
        return live

    async def _apply(
        self, upstream: Obj, inputs: adapter_config.AdapterInputs, text: str, digest: str
    ) -> dict[str, Obj]:
        # The NetworkPolicy goes first, so adapter pods never run unprotected.
        desired = [
            workload.network_policy(upstream, self.settings),
            workload.configmap(upstream, text),
            workload.deployment(upstream, inputs, digest, self.settings),
            workload.service(upstream),
        ]
        live: dict[str, Obj] = {}
        for obj in desired:
            result = await self.kube.apply(obj)
            meta = obj["metadata"]
            written = result["metadata"]
            self._applied[(obj["kind"], meta["namespace"], meta["name"])] = (
                written["resourceVersion"],
                int(written.get("generation") or 0),
            )
            live[obj["kind"]] = result
        return live

    async def _readiness(
        self, upstream: Obj, deployment: Obj | None
    ) -> tuple[Condition, int | None, probe.ProbeResult | None]:
        """The Ready condition, the adapter's tool count when it answered, and the probe (None: none runs)."""
        meta = upstream["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        if upstream["spec"].get("replicas", 1) == 0:
            return Condition("Ready", False, "ScaledToZero", "spec.replicas is 0: no adapter is running"), None, None
        result = await probe.probe(self.settings, namespace, name)
        if result.ok:
            message = f"adapter answers at {result.url} with {result.tool_count} tools"
            return Condition("Ready", True, "AdapterReady", message), result.tool_count, result
        if deployment is None:
            deployment = (
                await self.kube.get(object_path("apps/v1", "deployments", namespace, naming.adapter_name(name))) or {}
            )
        available = (deployment.get("status") or {}).get("availableReplicas", 0)
        wanted = upstream["spec"].get("replicas", 1)
        message = (
            f"adapter not answering at {result.url} ({result.error}); Deployment {naming.adapter_name(name)} has "
            f"{available}/{wanted} replicas available"
        )
        return Condition("Ready", False, "AdapterNotReady", message), None, result

    async def _write_status(
        self,
        upstream: Obj,
        ready: Condition,
        *,
        healthy: Condition | None = None,
        digest: str | None = None,
        tool_count: int | None = None,
    ) -> None:
        """Patch the status when it changed; without `healthy` (no probe ran) the Healthy condition stays."""
        meta = upstream["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        current = upstream.get("status") or {}
        generation = int(meta.get("generation", 0))
        try:
            kind = adapter_config.source_type(upstream.get("spec", {}))
        except ValueError:
            kind = "unknown"
        status: Obj = {
            "observedGeneration": generation,
            "sourceType": kind,
            "endpoint": workload.service_url(namespace, name, self.settings),
            "service": naming.adapter_name(name),
            "deployment": naming.adapter_name(name),
            "toolCount": tool_count,
            "conditions": conditions.merge(
                current.get("conditions"),
                [ready, healthy] if healthy else [ready],
                generation,
                keep=(upstream_health.HEALTHY,),
            ),
        }
        if digest:
            status["configHash"] = digest
        if conditions.status_without_times(status) == conditions.status_without_times(
            {k: current.get(k) for k in status}
        ):
            return
        await self.kube.patch_status(upstream_path(namespace, name), status)
        self.on_status()
        if conditions.transition(current.get("conditions"), ready):
            log.info("upstream %s/%s Ready=%s (%s)", namespace, name, ready.status, ready.reason)
            await events.post(self.kube, upstream, reason=ready.reason, message=ready.message, warning=not ready.ready)
        if (
            healthy
            and conditions.find(current.get("conditions"), healthy.type)
            and conditions.transition(current.get("conditions"), healthy)
        ):
            log.info("upstream %s/%s Healthy=%s (%s)", namespace, name, healthy.status, healthy.reason)
            warning = healthy.status == "False"
            await events.post(self.kube, upstream, reason=healthy.reason, message=healthy.message, warning=warning)


def _changed(before: tuple[str, int] | None, after: tuple[str, int] | None) -> bool:
    if before is None or after is None:
        return after is not None
    (version_before, generation_before), (version_after, generation_after) = before, after
    if generation_after:
        return generation_after != generation_before
    return version_after != version_before
