"""Named call limits (limits.py, `limits.callLimits`) in process over the in-memory store: what a
refusal says (the limit's name, its rate in words, when to retry), which calls share a count,
and that a call limit spends rate tokens and quota only for what the request asks
(mutation-tested; tests/gateway/test_call_limits.py runs them through two real replicas)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from mcp_gateway.config import RoutingConfig
from mcp_gateway.limits import Limiter, LimitExceeded, _rate_text, limit_data
from mcp_gateway.store.memory import MemoryStore


def config(call_limits: list[dict[str, Any]], **profile_limits: Any) -> RoutingConfig:
    return RoutingConfig.model_validate(
        {
            "tenants": [{"id": "acme"}],
            "profiles": [
                {
                    "id": "p",
                    "tenant": "acme",
                    "upstreams": [{"name": "u", "url": "http://u/mcp"}],
                    "limits": {"callLimits": call_limits, **profile_limits},
                }
            ],
        }
    )


async def refused(limiter: Limiter, cfg: RoutingConfig, **call: Any) -> LimitExceeded:
    with pytest.raises(LimitExceeded) as refusal:
        await admit(limiter, cfg, **call)
    return refusal.value


async def admit(limiter: Limiter, cfg: RoutingConfig, **call: Any) -> None:
    args: dict[str, Any] = {"caller": "key:k", "rate": True, "charge": True, "tool": "add", "subject": "sub:a"}
    args.update(call)
    caller = args.pop("caller")
    await limiter.admit(cfg, cfg.profiles[0], caller, **args)


def test_a_rate_in_words() -> None:
    assert _rate_text(1) == "1 calls per second"
    assert _rate_text(3 / 60) == "3 calls per minute"
    assert _rate_text(1.5) == "90 calls per minute"
    assert _rate_text(2 / 3600) == "2 calls per hour"
    assert _rate_text(5 / 86400) == "5 calls per day"
    assert _rate_text(1 / 7 / 86400) == f"{1 / 7 / 86400:g} calls per second"


def test_the_error_data_names_the_limit() -> None:
    plain = LimitExceeded("quota", "daily quota of 2 tool calls for tenant:acme", 30)
    assert limit_data(plain) == {"limit": plain.limit, "kind": "quota", "retryAfterSeconds": 30}
    named = LimitExceeded("rate", "call limit 'adds'", 4, "adds")
    assert limit_data(named) == {"limit": "call limit 'adds'", "kind": "rate", "retryAfterSeconds": 4, "name": "adds"}


async def test_a_named_rate_refusal_says_which_limit_and_when() -> None:
    cfg = config([{"name": "adds", "tools": ["ad*"], "rate": {"calls": 3, "per": "minute"}}])
    limiter = Limiter(MemoryStore())
    for _ in range(3):
        await admit(limiter, cfg)
    refusal = await refused(limiter, cfg)
    assert (refusal.kind, refusal.name) == ("rate", "adds") and 19 <= refusal.retry_after <= 20  # a token per 20 s
    what = "call limit 'adds' (3 calls per minute, burst 3)"
    assert str(refusal) == f"rate limit exceeded: {what}; retry after {refusal.retry_after} s"
    await admit(limiter, cfg, tool="echo")  # not an `ad*` tool
    await admit(limiter, cfg, subject="sub:b")  # per subject (the default): b has its own three
    await admit(limiter, cfg, rate=False)  # a request that takes no rate token is not refused by a rate
    # Without a subject the caller (key or token id) is who counts.
    for _ in range(3):
        await admit(limiter, cfg, subject=None, caller="key:other")
    assert (await refused(limiter, cfg, subject=None, caller="key:other")).name == "adds"


async def test_a_fast_limit_says_retry_after_one_second_at_least() -> None:
    cfg = config([{"name": "quick", "rate": {"calls": 10, "per": "second"}}])
    limiter = Limiter(MemoryStore())
    for _ in range(10):
        await admit(limiter, cfg)
    assert (await refused(limiter, cfg)).retry_after == 1  # 0.1 s rounds up to the smallest Retry-After


async def test_a_named_quota_refusal_and_what_it_counted() -> None:
    cfg = config(
        [
            {"name": "daily", "per": ["tool"], "quota": {"daily": 2}},
            {"name": "monthly", "tools": ["echo"], "per": [], "quota": {"monthly": 1}},
        ],
        quota={"daily": 100},
    )
    store = MemoryStore()
    limiter = Limiter(store)
    await admit(limiter, cfg, charge=False)  # not a counted call: no quota spent
    await admit(limiter, cfg)
    await admit(limiter, cfg, subject="sub:b")  # per tool: a and b share add's two
    refusal = await refused(limiter, cfg, subject="sub:c")
    assert (refusal.kind, refusal.name) == ("quota", "daily")
    assert refusal.limit == "daily quota of 2 tool calls for call limit 'daily'"
    assert 1 <= refusal.retry_after <= 86_400
    # The profile's own quota counts each caller on its own, and only the admitted calls.
    assert [used for _, _, used in await store.usage("caller:acme:p:key:k")] == [2]
    assert [used for _, _, used in await store.usage("limit:p:acme:p:daily:t=add")] == [2]
    await admit(limiter, cfg, tool="echo", caller="key:other")
    month = await refused(limiter, cfg, tool="echo", subject="sub:z")
    assert (month.name, month.limit) == ("monthly", "monthly quota of 1 tool calls for call limit 'monthly'")
    assert [used for _, _, used in await store.usage("caller:acme:p:key:other")] == [1]


async def test_long_subjects_and_tools_are_keyed_by_their_digest() -> None:
    cfg = config([{"name": "each", "per": ["subject", "tool"], "quota": {"daily": 1}}])
    store = MemoryStore()
    limiter = Limiter(store)
    prefix = "s" * 128
    exact, longer, other = prefix, prefix + "1", prefix + "2"
    tool = "t" * 129
    for subject in (exact, longer, other):  # no two share a count, whatever their first 128 characters
        await admit(limiter, cfg, subject=subject, tool=tool)
    assert (await refused(limiter, cfg, subject=longer, tool=tool)).name == "each"
    digest = "sha256=" + hashlib.sha256(tool.encode()).hexdigest()
    assert await store.usage(f"limit:p:acme:p:each:s={exact}:t={digest}") != []
    longer_digest = "sha256=" + hashlib.sha256(longer.encode()).hexdigest()
    assert await store.usage(f"limit:p:acme:p:each:s={longer_digest}:t={digest}") != []


async def test_a_subject_cannot_pose_as_another_subjects_key() -> None:
    """'%' and '=' are percent-encoded in keys, so "a:t=x" as a subject is not subject "a" on tool "x"."""
    cfg = config([{"name": "each", "per": ["subject", "tool"], "quota": {"daily": 1}}])
    store = MemoryStore()
    limiter = Limiter(store)
    await admit(limiter, cfg, subject="a:t=x%", tool="y=1")
    assert await store.usage("limit:p:acme:p:each:s=a:t%3Dx%25:t=y%3D1") != []
    await admit(limiter, cfg, subject="a", tool="x%3D")  # a different caller and tool: its own count
    assert await store.usage("limit:p:acme:p:each:s=a:t=x%253D") != []
