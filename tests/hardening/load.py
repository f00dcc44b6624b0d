"""The load scenario shared by the default-run load test and the soak variant: many concurrent
handshake sessions and stateless calls through a PostgreSQL-backed gateway with quotas on."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from mcp.shared.exceptions import MCPError

from tests.gateway.support import ADMIN_HEADERS, Spawn, mcp_client, profile, start_gateway, write_config
from tests.hardening.support import Outcome, drive, rss_kib, write_report


async def handshake_sessions(url: str, sessions: int, calls: int, deadline: float) -> list[Outcome]:
    """`sessions` concurrent handshake-era clients, each making up to `calls` tool calls."""
    outcomes: list[Outcome] = []

    async def one(s: int) -> None:
        async with mcp_client(url, mode="legacy") as client:
            for c in range(calls):
                if time.monotonic() > deadline:
                    return
                arguments = {"text": f"session-{s}-{c}"}
                started = time.monotonic()
                try:
                    result = await client.call_tool("echo", arguments)
                    ok = result.content[0].text == arguments["text"]  # type: ignore[union-attr]
                    outcomes.append(Outcome(200 if ok else 0, time.monotonic() - started, arguments, {"result": 1}))
                except MCPError as exc:
                    status = 429 if "quota" in exc.error.message else 0
                    outcomes.append(Outcome(status, time.monotonic() - started, arguments, None, exc.error.message))

    await asyncio.gather(*(one(s) for s in range(sessions)))
    return outcomes


async def run_load(
    spawn: Spawn,
    feature: str,
    tmp: Path,
    dsn: str,
    *,
    seconds: float,
    workers: int,
    sessions: int,
    quota: int,
    name: str,
) -> dict[str, Any]:
    config = write_config(
        tmp / "routing-load.yaml",
        {
            "tenants": [{"id": "acme", "limits": {"quota": {"daily": quota}}}],
            "profiles": [profile("open", "acme", [("feat", feature)], auth={"mode": "none"})],
        },
    )
    gateway = start_gateway(spawn, config, dsn=dsn, name="gw-load")
    url = gateway.url("open")
    # Imports, pools, caches. Up to 20 calls: fewer on a loaded machine, so they are counted, not assumed.
    warm = await drive(url, workers=2, seconds=0.5, max_calls=20, tag="warm")
    warmed = sum(1 for o in warm.outcomes if o.status == 200)
    rss_before = rss_kib(gateway.process.pid)
    started = time.monotonic()
    stateless, handshake = await asyncio.gather(
        drive(url, workers=workers, seconds=seconds, max_calls=100_000, tag="stateless"),
        handshake_sessions(url, sessions, 10_000, time.monotonic() + seconds),
    )
    elapsed = time.monotonic() - started
    rss_after = rss_kib(gateway.process.pid)
    outcomes = stateless.outcomes + handshake
    admitted = sum(1 for o in outcomes if o.status == 200)
    refused = sum(1 for o in outcomes if o.status == 429)
    errors = [o for o in outcomes if o.status not in (200, 429)]
    latencies = sorted(o.latency for o in outcomes if o.status == 200)
    connection = await asyncpg.connect(dsn)
    try:
        counted = await connection.fetchval(
            "SELECT coalesce(sum(used), 0) FROM quota_counters WHERE scope = 'tenant:acme' AND period LIKE 'd:%'"
        )
    finally:
        await connection.close()
    metrics = httpx.get(f"{gateway.base}/metrics", headers=ADMIN_HEADERS, timeout=10).text
    figures = {
        "seconds": round(elapsed, 1),
        "calls": len(outcomes),
        "statelessCalls": len(stateless.outcomes),
        "handshakeCalls": len(handshake),
        "handshakeSessions": sessions,
        "statelessWorkers": workers,
        "admitted": admitted + warmed,  # with the warm-up calls
        "quotaRefusals": refused,
        "errors": len(errors),
        "errorRate": round(len(errors) / max(1, len(outcomes)), 4),
        "callsPerSecond": round(len(outcomes) / elapsed, 1),
        "p50Ms": round(latencies[len(latencies) // 2] * 1000, 1) if latencies else None,
        "p99Ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 1) if latencies else None,
        "rssBeforeMiB": round(rss_before / 1024, 1),
        "rssAfterMiB": round(rss_after / 1024, 1),
        "quotaCounter": int(counted),
        "quota": quota,
    }
    write_report(name, figures)
    assert not errors, [(o.status, o.error, o.body) for o in errors[:5]]
    # Correctness, not speed: the store counted exactly the calls it admitted, never more than the quota.
    assert int(counted) == admitted + warmed, figures
    assert int(counted) <= quota
    assert "mcp_gateway_tool_calls_total" in metrics
    assert gateway.process.alive()
    return figures
