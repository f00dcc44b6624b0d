"""Rate limits (token buckets) and quotas (tool calls per day/month).

Buckets: per tenant (tenant `limits.rate`), per profile (profile `limits.rate`)
and per caller (profile `limits.perKeyRate`). Quotas: per tenant (tenant
`limits.quota`) and per caller of a profile (profile `limits.quota`, counted
under `caller:<tenant>:<profile>:<caller>`: each profile's quota is its own, so
a key opening two profiles has each profile's allowance on each). The store
decides, so with PostgreSQL every replica shares the same counters.

Named call limits (`limits.callLimits` of a profile or a tenant) add buckets and counters for
tool calls whose name matches their globs, keyed by the caller's subject (`sub` claim, else
the key or token id), by the tool, by both, or by neither (`per`). They go in the same store
call, so they are exact across replicas like the others; a refusal names the limit.

A request's rate tokens and its quota charge are one store call (with
PostgreSQL, at most one round trip, shared by requests that arrive together).
When the store cannot answer (database down), `gateway.limitsWhenStoreDown`
decides: `closed` (default) refuses the request with `LimitsUnavailable`
(HTTP 503), `open` admits it uncounted and logs a warning.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from fnmatch import fnmatchcase
from typing import TypeVar

from mcp_gateway.config import CallLimit, Profile, Quota, RoutingConfig
from mcp_gateway.store.base import Bucket, Counter, Store

log = logging.getLogger("mcp_gateway.limits")

T = TypeVar("T")


@dataclass
class LimitExceeded(Exception):
    kind: str  # "rate" | "quota"
    limit: str  # which limit, human readable
    retry_after: int
    name: str | None = None  # a named call limit's name (limits.callLimits)

    def __str__(self) -> str:
        what = "rate limit" if self.kind == "rate" else "quota"
        return f"{what} exceeded: {self.limit}; retry after {self.retry_after} s"


def limit_data(exceeded: LimitExceeded) -> dict[str, object]:
    """The JSON-RPC error's `data` for a refusal: which limit, its kind, when to retry (and its name)."""
    data: dict[str, object] = {
        "limit": exceeded.limit,
        "kind": exceeded.kind,
        "retryAfterSeconds": exceeded.retry_after,
    }
    if exceeded.name is not None:
        data["name"] = exceeded.name
    return data


class LimitsUnavailable(Exception):
    """The store holding rate limits and quotas did not answer and the policy is to fail closed."""

    retry_after = 5

    def __str__(self) -> str:
        return (
            "rate limits and quotas cannot be checked: the gateway's database is unreachable; "
            f"retry after {self.retry_after} s (gateway.limitsWhenStoreDown: closed)"
        )


def _period_ends(now: datetime) -> tuple[str, datetime, str, datetime]:
    """The quota periods `now` falls in, and their ends: (day, day end, month, month end)."""
    return _periods_of_day(now.date())


@functools.lru_cache(maxsize=4)
def _periods_of_day(day: date) -> tuple[str, datetime, str, datetime]:
    # Cached: every tool call needs the period names, and formatting dates costs more than the lookup.
    day_end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    month_end = datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=UTC)
    return f"d:{day:%Y-%m-%d}", day_end, f"m:{day:%Y-%m}", month_end


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

    async def admit(
        self,
        config: RoutingConfig,
        profile: Profile,
        caller: str,
        *,
        rate: bool,
        charge: bool,
        tool: str | None = None,
        subject: str | None = None,
    ) -> None:
        """Take the request's rate tokens (`rate`) and count it as a tool call (`charge`), in one store call.

        `tool` (a tools/call's tool) and `subject` (the caller's subject) bring in the named call limits.
        Raises `LimitExceeded` naming the limit that refused, or `LimitsUnavailable`.
        """
        buckets = _buckets(config, profile, caller) if rate else []
        now = datetime.now(UTC)
        day, day_end, month, month_end = _period_ends(now)
        counters = _quota_counters(config, profile, caller, day, month) if charge else []
        named: dict[str, str] = {}  # bucket key / counter scope -> the call limit's name
        if tool is not None:
            for scope, limit in _call_limits(config, profile, tool):
                key = _limit_key(scope, limit, tool, subject or caller)
                named[key] = limit.name
                if rate and limit.rate is not None:
                    buckets.append(Bucket(key, limit.rate.per_second, limit.rate.bucket_size))
                if charge:
                    counters += _counters(key, limit.quota, day, month)
        if not buckets and not counters:
            return
        sync_commit = config.gateway.limits_commit == "sync"
        refusal = await self._ask(config, "limits", self.store.admit(buckets, counters, sync_commit=sync_commit))
        if refusal is None:
            return
        if refusal.bucket is not None:
            bucket = refusal.bucket
            name = named.get(bucket.key)
            what = f"{bucket.key} ({bucket.rate:g}/s, burst {bucket.burst})"
            if name is not None:
                what = f"call limit {name!r} ({_rate_text(bucket.rate)}, burst {bucket.burst})"
            raise LimitExceeded("rate", what, max(1, math.ceil(refusal.wait_seconds)), name)
        counter = refusal.counter
        assert counter is not None
        end = day_end if counter.period.startswith("d:") else month_end
        period = "daily" if counter.period.startswith("d:") else "monthly"
        name = named.get(counter.scope)
        whose = f"call limit {name!r}" if name is not None else counter.scope
        raise LimitExceeded(
            "quota",
            f"{period} quota of {counter.limit} tool calls for {whose}",
            max(1, math.ceil((end - now).total_seconds())),
            name,
        )


def _buckets(config: RoutingConfig, profile: Profile, caller: str) -> list[Bucket]:
    """The tenant's, the profile's and the caller's token buckets that apply to a request."""
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
    return buckets


def _quota_counters(config: RoutingConfig, profile: Profile, caller: str, day: str, month: str) -> list[Counter]:
    """The tenant's quota and the caller's quota on this profile, for the current day and month."""
    tenant = config.tenant(profile.tenant)
    counters = _counters(f"tenant:{profile.tenant}", tenant.limits.quota if tenant else None, day, month)
    counters += _counters(f"caller:{profile.tenant}:{profile.id}:{caller}", profile.limits.quota, day, month)
    return counters


def _call_limits(config: RoutingConfig, profile: Profile, tool: str) -> list[tuple[str, CallLimit]]:
    """The tenant's and the profile's call limits whose globs match `tool`, with their scope."""
    tenant = config.tenant(profile.tenant)
    found = []
    for scope, limits in ((f"t:{profile.tenant}", tenant.limits.call_limits if tenant else []),
                          (f"p:{profile.tenant}:{profile.id}", profile.limits.call_limits)):  # fmt: skip
        found += [(scope, limit) for limit in limits if any(fnmatchcase(tool, g) for g in limit.tools)]
    return found


def _limit_key(scope: str, limit: CallLimit, tool: str, subject: str) -> str:
    """The bucket key and quota scope of one call limit for one call: `limit:<scope>:<name>[:s=..][:t=..]`.

    Values are escaped so that none contains '=' (`%` and `=` percent-encoded): a subject that
    contains ":t=" cannot pose as another subject's key for some tool. A value longer than 128
    characters is replaced by `sha256=<digest>`, which no escaped value can equal (keys stay bounded).
    """
    key = f"limit:{scope}:{limit.name}"
    if "subject" in limit.per:
        key += f":s={_bounded(subject)}"
    if "tool" in limit.per:
        key += f":t={_bounded(tool)}"
    return key


def _bounded(value: str) -> str:
    escaped = value.replace("%", "%25").replace("=", "%3D")
    return escaped if len(escaped) <= 128 else "sha256=" + hashlib.sha256(value.encode()).hexdigest()


def _rate_text(per_second: float) -> str:
    for unit, seconds in (("second", 1), ("minute", 60), ("hour", 3600), ("day", 86400)):
        calls = per_second * seconds
        if calls >= 1 and abs(calls - round(calls)) < 1e-6:
            return f"{round(calls)} calls per {unit}"
    return f"{per_second:g} calls per second"
