"""limits.py in process, over the in-memory store: which buckets and counters apply, how a
refusal is reported, quota periods, and the store-down policy (mutation-tested)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from mcp_gateway import limits
from mcp_gateway.config import RoutingConfig
from mcp_gateway.limits import Limiter, LimitExceeded, LimitsUnavailable, _buckets, _quota_counters
from mcp_gateway.store.base import Bucket, Counter, Refusal
from mcp_gateway.store.memory import MemoryStore


def config(
    tenant_limits: dict[str, Any] | None = None, gateway: dict[str, Any] | None = None, **profile_limits: Any
) -> RoutingConfig:
    return RoutingConfig.model_validate(
        {
            "gateway": gateway or {},
            "tenants": [{"id": "acme", "limits": tenant_limits or {}}],
            "profiles": [
                {
                    "id": "dev",
                    "tenant": "acme",
                    "upstreams": [{"name": "u", "url": "http://u/mcp"}],
                    "limits": profile_limits,
                }
            ],
        }
    )


def test_buckets_of_tenant_profile_and_caller() -> None:
    cfg = config(
        {"rate": {"perSecond": 10, "burst": 20}},
        rate={"perSecond": 5, "burst": 6},
        perKeyRate={"perSecond": 1, "burst": 2},
    )
    profile = cfg.profile("dev")
    assert profile is not None
    assert _buckets(cfg, profile, "key:1") == [
        Bucket("tenant:acme", 10, 20),
        Bucket("profile:dev", 5, 6),
        Bucket("caller:dev:key:1", 1, 2),
    ]
    plain = config()
    assert _buckets(plain, plain.profiles[0], "key:1") == []


def test_quota_counters_of_tenant_and_caller_on_the_profile() -> None:
    cfg = config({"quota": {"daily": 100, "monthly": 1000}}, quota={"monthly": 7})
    counters = _quota_counters(cfg, cfg.profiles[0], "key:1", "d:X", "m:Y")
    assert counters == [
        Counter("tenant:acme", "d:X", 100),
        Counter("tenant:acme", "m:Y", 1000),
        Counter("caller:acme:dev:key:1", "m:Y", 7),
    ]
    day_only = config(quota={"daily": 0})
    assert _quota_counters(day_only, day_only.profiles[0], "c", "d:X", "m:Y") == [
        Counter("caller:acme:dev:c", "d:X", 0)
    ]


def test_periods_and_their_ends() -> None:
    assert limits._periods_of_day(date(2026, 12, 31)) == (
        "d:2026-12-31",
        datetime(2027, 1, 1, tzinfo=UTC),
        "m:2026-12",
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    day, day_end, month, month_end = limits._period_ends(datetime(2026, 2, 3, 23, 59, tzinfo=UTC))
    assert (day, day_end, month, month_end) == (
        "d:2026-02-03",
        datetime(2026, 2, 4, tzinfo=UTC),
        "m:2026-02",
        datetime(2026, 3, 1, tzinfo=UTC),
    )


async def test_rate_refusal_names_the_bucket_and_a_retry_time() -> None:
    cfg = config(perKeyRate={"perSecond": 0.5, "burst": 1})
    limiter = Limiter(MemoryStore())
    await limiter.admit(cfg, cfg.profiles[0], "key:1", rate=True, charge=False)
    with pytest.raises(LimitExceeded) as refused:
        await limiter.admit(cfg, cfg.profiles[0], "key:1", rate=True, charge=False)
    assert refused.value.kind == "rate" and refused.value.retry_after == 2
    assert str(refused.value) == "rate limit exceeded: caller:dev:key:1 (0.5/s, burst 1); retry after 2 s"
    await limiter.admit(cfg, cfg.profiles[0], "key:2", rate=True, charge=False)  # another caller's bucket
    await limiter.admit(cfg, cfg.profiles[0], "key:1", rate=False, charge=True)  # no rate asked: admitted


async def test_quota_refusal_names_the_period_and_waits_for_its_end() -> None:
    cfg = config({"quota": {"daily": 1, "monthly": 5}})
    store = MemoryStore()
    limiter = Limiter(store)
    await limiter.admit(cfg, cfg.profiles[0], "key:1", rate=True, charge=True)
    await limiter.admit(cfg, cfg.profiles[0], "key:1", rate=True, charge=False)  # not charged
    with pytest.raises(LimitExceeded) as refused:
        await limiter.admit(cfg, cfg.profiles[0], "key:1", rate=False, charge=True)
    error = refused.value
    assert error.kind == "quota" and error.limit == "daily quota of 1 tool calls for tenant:acme"
    now = datetime.now(UTC)
    _, day_end, _, _ = limits._period_ends(now)
    assert abs(error.retry_after - (day_end - now).total_seconds()) <= 2 and error.retry_after >= 1
    assert str(error).startswith("quota exceeded: daily quota of 1")
    assert sorted(u for _, _, u in await store.usage("tenant:acme")) == [1, 1]


async def test_monthly_quota_refusal() -> None:
    cfg = config({"quota": {"monthly": 0}})
    with pytest.raises(LimitExceeded) as refused:
        await Limiter(MemoryStore()).admit(cfg, cfg.profiles[0], "k", rate=False, charge=True)
    assert refused.value.limit == "monthly quota of 0 tool calls for tenant:acme"
    _, _, _, month_end = limits._period_ends(datetime.now(UTC))
    assert refused.value.retry_after == pytest.approx((month_end - datetime.now(UTC)).total_seconds(), abs=2)


class DownStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def admit(self, buckets: list[Bucket], counters: list[Counter], *, sync_commit: bool) -> Refusal | None:
        self.calls += 1
        raise ConnectionError("database down")


class Recording(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.modes: list[bool] = []

    async def admit(self, buckets: list[Bucket], counters: list[Counter], *, sync_commit: bool) -> Refusal | None:
        self.modes.append(sync_commit)
        return await super().admit(buckets, counters, sync_commit=sync_commit)


async def test_store_down_fails_closed_by_default_and_open_when_asked(caplog: pytest.LogCaptureFixture) -> None:
    cfg = config({"quota": {"daily": 5}})
    store = DownStore()
    with pytest.raises(LimitsUnavailable) as closed:
        await Limiter(store).admit(cfg, cfg.profiles[0], "k", rate=True, charge=True)
    assert "retry after 5 s" in str(closed.value) and closed.value.retry_after == 5
    cfg = config({"quota": {"daily": 5}}, {"limitsWhenStoreDown": "open"})
    await Limiter(store).admit(cfg, cfg.profiles[0], "k", rate=True, charge=True)
    assert store.calls == 2
    # The operator reads which way it went and the error's type; the error's text (which may carry
    # a connection string) stays out of the log.
    assert [r.getMessage() for r in caplog.records if r.name == "mcp_gateway.limits"] == [
        "limits refused, store unreachable (failing closed): ConnectionError",
        "limits not counted, store unreachable (failing open): ConnectionError",
    ]
    await Limiter(store).admit(config(), config().profiles[0], "k", rate=True, charge=True)  # nothing to ask
    assert store.calls == 2


async def test_commit_mode_follows_the_setting() -> None:
    cfg = config({"quota": {"daily": 5}})
    store = Recording()
    await Limiter(store).admit(cfg, cfg.profiles[0], "k", rate=False, charge=True)
    cfg = config({"quota": {"daily": 5}}, {"limitsCommit": "sync"})
    await Limiter(store).admit(cfg, cfg.profiles[0], "k", rate=False, charge=True)
    assert store.modes == [False, True]


def test_the_store_down_refusal_says_what_happened_and_when_to_retry() -> None:
    assert str(LimitsUnavailable()) == (
        "rate limits and quotas cannot be checked: the gateway's database is unreachable; "
        "retry after 5 s (gateway.limitsWhenStoreDown: closed)"
    )


async def test_a_quota_refusal_in_the_periods_last_second_says_retry_after_one_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    late = datetime(2026, 12, 3, 23, 59, 59, 500_000, tzinfo=UTC)

    class LastSecond(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> LastSecond:
            return cls.fromtimestamp(late.timestamp(), tz)

    monkeypatch.setattr(limits, "datetime", LastSecond)
    cfg = config({"quota": {"daily": 1}})
    limiter = Limiter(MemoryStore())
    await limiter.admit(cfg, cfg.profiles[0], "key:1", rate=False, charge=True)
    with pytest.raises(LimitExceeded) as refused:
        await limiter.admit(cfg, cfg.profiles[0], "key:1", rate=False, charge=True)
    assert refused.value.retry_after == 1  # half a second to midnight, rounded up, never 0
