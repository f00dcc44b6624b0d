"""Rate limits (token buckets) and quotas (tool calls per day/month).

Buckets: per tenant (tenant `limits.rate`), per profile (profile `limits.rate`)
and per caller (profile `limits.perKeyRate`). Quotas: per tenant (tenant
`limits.quota`) and per caller of a profile (profile `limits.quota`, counted
under `caller:<tenant>:<profile>:<caller>`: each profile's quota is its own, so
a key opening two profiles has each profile's allowance on each). The store
decides, so with PostgreSQL every replica shares the same counters.

When the store cannot answer (database down), `gateway.limitsWhenStoreDown`
decides: `closed` (default) refuses the request with `LimitsUnavailable`
(HTTP 503), `open` admits it uncounted and logs a warning.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from mcp_gateway.config import Profile, Quota, RoutingConfig
from mcp_gateway.store.base import Bucket, Counter, Store

log = logging.getLogger("mcp_gateway.limits")

T = TypeVar("T")


@dataclass
class LimitExceeded(Exception):
    kind: str  # "rate" | "quota"
    limit: str  # which limit, human readable
    retry_after: int

    def __str__(self) -> str:
        what = "rate limit" if self.kind == "rate" else "quota"
        return f"{what} exceeded: {self.limit}; retry after {self.retry_after} s"


class LimitsUnavailable(Exception):
    """The store holding rate limits and quotas did not answer and the policy is to fail closed."""

    retry_after = 5

    def __str__(self) -> str:
        return (
            "rate limits and quotas cannot be checked: the gateway's database is unreachable; "
            f"retry after {self.retry_after} s (gateway.limitsWhenStoreDown: closed)"
        )


def _period_ends(now: datetime) -> tuple[str, datetime, str, datetime]:
    day_end = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    month_end = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    return f"d:{now:%Y-%m-%d}", day_end, f"m:{now:%Y-%m}", month_end


def _counters(scope: str, quota: Quota | None, day: str, month: str) -> list[Counter]:
    out = []
    if quota and quota.daily is not None:
        out.append(Counter(scope, day, quota.daily))
    if quota and quota.monthly is not None:
        out.append(Counter(scope, month, quota.monthly))
    return out


class Limiter:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def _ask(self, config: RoutingConfig, what: str, call: Awaitable[T]) -> T | None:
        """Run one store call; on failure apply `gateway.limitsWhenStoreDown` (None = admit)."""
        try:
            return await call
        except Exception as exc:
            if config.gateway.limits_when_store_down == "open":
                log.warning("%s not counted, store unreachable (failing open): %s", what, type(exc).__name__)
                return None
            log.warning("%s refused, store unreachable (failing closed): %s", what, type(exc).__name__)
            raise LimitsUnavailable from None

    async def check_rate(self, config: RoutingConfig, profile: Profile, caller: str) -> None:
        tenant = config.tenant(profile.tenant)
        buckets = []
        if tenant and tenant.limits.rate:
            r = tenant.limits.rate
            buckets.append(Bucket(f"tenant:{tenant.id}", r.per_second, r.burst))
        if profile.limits.rate:
            r = profile.limits.rate
            buckets.append(Bucket(f"profile:{profile.id}", r.per_second, r.burst))
        if profile.limits.per_key_rate:
            r = profile.limits.per_key_rate
            buckets.append(Bucket(f"caller:{profile.id}:{caller}", r.per_second, r.burst))
        if not buckets:
            return
        refused = await self._ask(config, "rate limit", self.store.take(buckets))
        if refused is not None:
            bucket, wait = refused
            what = f"{bucket.key} ({bucket.rate:g}/s, burst {bucket.burst})"
            raise LimitExceeded("rate", what, max(1, math.ceil(wait)))

    async def charge_tool_call(self, config: RoutingConfig, profile: Profile, caller: str) -> None:
        """Count one tool call against the tenant's quota and the caller's quota on this profile (all or nothing)."""
        tenant = config.tenant(profile.tenant)
        now = datetime.now(UTC)
        day, day_end, month, month_end = _period_ends(now)
        counters = _counters(f"tenant:{profile.tenant}", tenant.limits.quota if tenant else None, day, month)
        counters += _counters(f"caller:{profile.tenant}:{profile.id}:{caller}", profile.limits.quota, day, month)
        if not counters:
            return
        refused = await self._ask(config, "quota", self.store.consume(counters))
        if refused is not None:
            end = day_end if refused.period.startswith("d:") else month_end
            period = "daily" if refused.period.startswith("d:") else "monthly"
            raise LimitExceeded(
                "quota",
                f"{period} quota of {refused.limit} tool calls for {refused.scope}",
                max(1, math.ceil((end - now).total_seconds())),
            )
