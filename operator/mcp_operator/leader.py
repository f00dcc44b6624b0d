"""Leader election on a coordination.k8s.io Lease, so two or more replicas are
safe: only the holder reconciles; the others wait and take over when the
holder stops renewing. Expiry is judged by how long the record has been
unchanged on *our* clock, so clock skew between nodes does not matter.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from mcp_operator.kube import Kube, KubeError, collection_path, object_path

log = logging.getLogger("mcp_operator.leader")


def _micro_time() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class LeaderElector:
    kube: Kube
    namespace: str
    name: str
    identity: str
    duration: float = 15.0
    owner_references: list[dict[str, Any]] = field(default_factory=list)  # written on every update
    _observed: tuple[Any, ...] = ()
    _observed_at: float = field(default_factory=time.monotonic)
    _last_renew: float = 0.0

    @property
    def path(self) -> str:
        return object_path("coordination.k8s.io/v1", "leases", self.namespace, self.name)

    def _body(self, lease: dict[str, Any] | None) -> dict[str, Any]:
        spec = dict((lease or {}).get("spec") or {})
        now = _micro_time()
        if spec.get("holderIdentity") != self.identity:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if lease else 0)
        spec.update(holderIdentity=self.identity, leaseDurationSeconds=max(1, round(self.duration)), renewTime=now)
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if self.owner_references:
            meta["ownerReferences"] = self.owner_references
        if lease:
            meta["resourceVersion"] = lease["metadata"]["resourceVersion"]
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}

    def _expired(self, lease: dict[str, Any]) -> bool:
        spec = lease.get("spec") or {}
        record = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("leaseDurationSeconds"))
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()
        duration = float(spec.get("leaseDurationSeconds") or self.duration)
        return time.monotonic() - self._observed_at > duration

    async def try_acquire(self) -> bool:
        """One attempt to take or renew the lease; True when we hold it afterwards."""
        try:
            lease = await self.kube.get(self.path)
            if lease is None:
                await self.kube.create(
                    collection_path("coordination.k8s.io/v1", "leases", self.namespace), self._body(None)
                )
            else:
                holder = (lease.get("spec") or {}).get("holderIdentity")
                if holder and holder != self.identity and not self._expired(lease):
                    return False
                await self.kube.request("PUT", self.path, body=self._body(lease))
        except KubeError as exc:
            if exc.status != 409:  # 409: someone else wrote first; just try again later
                log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
            return False
        self._last_renew = time.monotonic()
        return True

    async def acquire(self) -> None:
        """Wait until we hold the lease."""
        log.info("waiting to become leader (lease %s/%s, identity %s)", self.namespace, self.name, self.identity)
        retry = max(0.5, self.duration / 5)
        acquired = await self.try_acquire()
        while not acquired:
            await asyncio.sleep(retry)
            acquired = await self.try_acquire()
        log.info("became leader (lease %s/%s)", self.namespace, self.name)

    async def hold(self) -> None:
        """Renew until renewing fails for longer than the renew deadline; then return (leadership lost)."""
        deadline = self.duration * 2 / 3
        while True:
            await asyncio.sleep(self.duration / 5)
            if await self.try_acquire():
                continue
            if time.monotonic() - self._last_renew > deadline:
                log.error("lost leadership of lease %s/%s", self.namespace, self.name)
                return

    async def release(self) -> None:
        """Hand the lease back so a standby replica takes over at once."""
        for attempt in range(3):  # a renewal still in flight may win the first write (409)
            try:
                lease = await self.kube.get(self.path)
                if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                    body = self._body(lease)
                    body["spec"].update(holderIdentity="", leaseDurationSeconds=1)
                    await self.kube.request("PUT", self.path, body=body)
                    log.info("released lease %s/%s", self.namespace, self.name)
                return
            except KubeError as exc:
                if exc.status != 409 or attempt == 2:
                    log.warning("could not release lease %s/%s: %s", self.namespace, self.name, exc)
                    return
                await asyncio.sleep(0.2)
