"""Named call limits (`limits.callLimits`): rate limits and quotas per caller subject, per tool
glob, or both. Two real gateway replicas on one real PostgreSQL share them exactly; a refusal
carries Retry-After and the limit's name; the in-memory store counts them the same way; bad
limit settings are refused with a clear message."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp_gateway.config import parse_config
from mcp_gateway.limits import Limiter, LimitExceeded
from mcp_gateway.store.memory import MemoryStore

from tests.gateway.support import GatewayProc, Spawn, modern_call, modern_headers, profile, start_gateway, write_config
from tests.support.jwks import Issuer, oidc_settings, running_issuer

RATE_LIMITED = -32029
CALL_LIMITS = [
    {"name": "adds-per-user", "tools": ["ad*"], "rate": {"calls": 3, "per": "minute"}},
    {"name": "daily-per-user", "quota": {"daily": 8}},
]


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with running_issuer("k1") as issuer:
        yield issuer


def call(gw: GatewayProc, issuer: Issuer, sub: str, tool: str, arguments: dict[str, Any]) -> httpx.Response:
    headers = {**modern_headers("tools/call", tool), "Authorization": f"Bearer {issuer.token('k1', sub=sub)}"}
    return httpx.post(gw.url("limited"), json=modern_call(tool, arguments), headers=headers, timeout=10)


def test_two_replicas_share_per_subject_and_per_tool_limits(
    spawn: Spawn, feature: str, pg_dsn: str, tmp_path: Path, issuer: Issuer
) -> None:
    auth = {"mode": "oidc", "oidc": oidc_settings(issuer.url)}
    config = write_config(
        tmp_path / "routing.yaml",
        {
            "gateway": {"allowPrivateJwks": True},
            "tenants": [{"id": "acme"}],
            "profiles": [
                profile("limited", "acme", [("feat", feature)], auth=auth, limits={"callLimits": CALL_LIMITS})
            ],
        },
    )
    replicas = [start_gateway(spawn, config, dsn=pg_dsn, name=f"gw-limits-{i}") for i in range(2)]
    turns = itertools.cycle(replicas)

    for i in range(3):  # alice's three adds a minute, alternating replicas
        answer = call(next(turns), issuer, "alice", "add", {"a": i, "b": 1})
        assert answer.json()["result"]["structuredContent"]["sum"] == i + 1, answer.text
    refused = call(next(turns), issuer, "alice", "add", {"a": 1, "b": 1})
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    error = refused.json()["error"]
    assert error["code"] == RATE_LIMITED
    assert error["data"]["name"] == "adds-per-user" and error["data"]["kind"] == "rate"
    assert "'adds-per-user'" in error["message"] and "3 calls per minute" in error["message"]

    # Per subject: bob has his own three; other tools are not limited by the `ad*` rule.
    assert "result" in call(next(turns), issuer, "bob", "add", {"a": 1, "b": 1}).json()
    for _ in range(5):  # alice: 3 adds + 5 echoes = her daily 8 (the refused add was not counted)
        assert "result" in call(next(turns), issuer, "alice", "echo", {"text": "x"}).json()
    over = call(next(turns), issuer, "alice", "echo", {"text": "x"})
    assert over.status_code == 429
    assert over.json()["error"]["data"]["name"] == "daily-per-user"
    assert over.json()["error"]["data"]["kind"] == "quota"
    assert int(over.headers["retry-after"]) <= 86_400
    assert "result" in call(next(turns), issuer, "bob", "echo", {"text": "x"}).json()


def _config(limits: list[dict[str, Any]], tenant_limits: list[dict[str, Any]] | None = None) -> Any:
    tenant: dict[str, Any] = {"id": "acme"}
    if tenant_limits:
        tenant["limits"] = {"callLimits": tenant_limits}
    text = {
        "tenants": [tenant],
        "profiles": [profile("p", "acme", [("u", "http://127.0.0.1:1/mcp")], limits={"callLimits": limits})],
    }
    import json

    return parse_config(json.dumps(text))


async def _admitted(limiter: Limiter, config: Any, tool: str, subject: str, times: int) -> int:
    admitted = 0
    for _ in range(times):
        try:
            await limiter.admit(config, config.profiles[0], "key:k", rate=True, charge=True, tool=tool, subject=subject)
            admitted += 1
        except LimitExceeded:
            pass
    return admitted


async def test_in_memory_store_keys_limits_by_tool_subject_both_or_neither() -> None:
    config = _config(
        [
            {"name": "per-tool", "tools": ["*delete*"], "per": ["tool"], "quota": {"daily": 2}},
            {"name": "shared", "tools": ["reset"], "per": [], "rate": {"calls": 1, "per": "hour"}},
        ],
        tenant_limits=[{"name": "tenant-wide", "tools": ["drop"], "per": ["subject", "tool"], "quota": {"daily": 1}}],
    )
    limiter = Limiter(MemoryStore())
    # per tool: each deleting tool its own 2, whoever calls
    assert await _admitted(limiter, config, "delete_a", "sub:alice", 3) == 2
    assert await _admitted(limiter, config, "delete_a", "sub:bob", 1) == 0
    assert await _admitted(limiter, config, "delete_b", "sub:bob", 3) == 2
    # neither: one hour-bucket for every caller
    assert await _admitted(limiter, config, "reset", "sub:alice", 1) == 1
    assert await _admitted(limiter, config, "reset", "sub:bob", 1) == 0
    # a tenant's limit, per subject and tool
    assert await _admitted(limiter, config, "drop", "sub:alice", 2) == 1
    assert await _admitted(limiter, config, "drop", "sub:bob", 1) == 1
    assert await _admitted(limiter, config, "echo", "sub:alice", 5) == 5  # no limit matches
    with pytest.raises(LimitExceeded) as refused:
        await limiter.admit(config, config.profiles[0], "key:k", rate=True, charge=True, tool="reset", subject="s")
    assert refused.value.name == "shared" and refused.value.kind == "rate"
    assert "1 calls per hour" in str(refused.value)


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        ({"name": "empty"}, "sets neither rate nor quota"),
        ({"name": "bad name!", "quota": {"daily": 1}}, "limit name 'bad name!'"),
        ({"name": "x", "per": ["user"], "quota": {"daily": 1}}, "per.0"),
        ({"name": "x", "rate": {"calls": 0}}, "calls"),
        ({"name": "x", "rate": {"calls": 1, "per": "week"}}, "per"),
    ],
)
def test_bad_call_limits_are_refused_with_a_clear_message(limit: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="callLimits") as refused:
        _config([limit])
    assert message in str(refused.value)


def test_duplicate_call_limit_names_are_refused() -> None:
    with pytest.raises(ValueError, match="callLimits names must be unique"):
        _config([{"name": "a", "quota": {"daily": 1}}, {"name": "a", "quota": {"daily": 2}}])


async def test_limit_keys_are_unambiguous_whatever_the_subject_or_tool_contains() -> None:
    """A subject containing ":t=" must not share a counter with another subject's call of another tool."""
    config = _config([{"name": "both", "per": ["subject", "tool"], "quota": {"daily": 1}}])
    limiter = Limiter(MemoryStore())
    assert await _admitted(limiter, config, "c", "sub:a:t=b", 1) == 1
    assert await _admitted(limiter, config, "b:t=c", "sub:a", 1) == 1  # its own counter
    long_subject = "sub:" + "x" * 200  # digested: cannot pose as a short subject spelling a digest
    assert await _admitted(limiter, config, "c", long_subject, 2) == 1
    assert await _admitted(limiter, config, "c", long_subject + "y", 1) == 1
