"""PostgreSQL becomes unreachable under load and comes back (a TCP proxy in front of the
shared PostgreSQL is cut and restored, so other tests on the machine are not disturbed).

The gateway follows `gateway.limitsWhenStoreDown`: `closed` refuses quota-checked calls
with 503 + Retry-After, `open` admits them uncounted. It reconnects by itself, quota
counters match the calls admitted, and no audit record of a completed call is lost.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tests.gateway.support import ADMIN_HEADERS, GatewayProc, Spawn, TcpProxy, profile, start_gateway, write_config
from tests.hardening.support import LoadResult, argument_hash, drive, pg_port, via_port, write_report

QUOTA = {"daily": 100_000, "monthly": 1_000_000}


def gateway_for(spawn: Spawn, tmp: Path, feature: str, dsn: str, policy: str) -> GatewayProc:
    config = tmp / f"routing-{policy}.yaml"
    tenant = f"t-{policy}"
    write_config(
        config,
        {
            "gateway": {"limitsWhenStoreDown": policy},
            "tenants": [{"id": tenant, "limits": {"quota": QUOTA}}],
            "profiles": [profile(policy, tenant, [("feat", feature)], auth={"mode": "none"})],
        },
    )
    return start_gateway(spawn, config, dsn=dsn, name=f"gw-{policy}")


def audit_pending(gateway: GatewayProc) -> float:
    for line in httpx.get(f"{gateway.base}/metrics", headers=ADMIN_HEADERS, timeout=5).text.splitlines():
        if line.startswith("mcp_gateway_audit_pending "):
            return float(line.split()[1])
    return -1.0


async def wait_until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"{what} did not happen within {seconds}s")


async def phase(gateways: dict[str, GatewayProc], seconds: float, tag: str) -> dict[str, LoadResult]:
    runs = [
        drive(gw.url(name), workers=4, seconds=seconds, max_calls=600, tag=f"{tag}-{name}")
        for name, gw in gateways.items()
    ]
    return dict(zip(gateways, await asyncio.gather(*runs), strict=True))


async def test_database_outage_under_load(spawn: Spawn, feature: str, tmp_path: Path, pg_dsn: str) -> None:
    database = await TcpProxy(pg_port(pg_dsn)).start()
    try:
        proxied = via_port(pg_dsn, database.port)
        gateways = {policy: gateway_for(spawn, tmp_path, feature, proxied, policy) for policy in ("closed", "open")}

        before = await phase(gateways, 1.5, "before")
        database.target_port = None  # PostgreSQL becomes unreachable
        database.cut()
        during = await phase(gateways, 2.5, "during")
        database.target_port = pg_port(pg_dsn)
        after = await phase(gateways, 3.0, "after")

        # Reconnected on its own: ready again, and the fail-closed gateway admits calls again.
        for gw in gateways.values():
            await wait_until(lambda gw=gw: httpx.get(f"{gw.base}/readyz", timeout=5).status_code == 200, 15, "ready")
        tail = await phase({"closed": gateways["closed"]}, 1.0, "tail")
        assert tail["closed"].by_status() == {200: len(tail["closed"].outcomes)}

        for gw in gateways.values():
            await wait_until(lambda gw=gw: audit_pending(gw) == 0, 25, "audit flush")
        figures = await check_outcomes(pg_dsn, [before, during, after, tail])
        write_report("hardening-database-outage", figures)
    finally:
        await database.close()


async def check_outcomes(dsn: str, phases: list[dict[str, LoadResult]]) -> dict[str, Any]:
    connection = await asyncpg.connect(dsn)
    try:
        audit = await connection.fetch("SELECT tenant, arguments FROM audit_log")
        counters = await connection.fetch("SELECT scope, period, used FROM quota_counters WHERE period LIKE 'd:%'")
    finally:
        await connection.close()
    used = {row["scope"]: int(row["used"]) for row in counters}
    figures: dict[str, Any] = {}
    for policy in ("closed", "open"):
        outcomes = [o for p in phases if policy in p for o in p[policy].outcomes]
        during = phases[1][policy]
        statuses = Counter(o.status for o in outcomes)
        completed = [o for p in phases if policy in p for o in p[policy].completed()]
        recorded = Counter(row["arguments"] for row in audit if row["tenant"] == f"t-{policy}")
        lost = [o.arguments for o in completed if recorded[argument_hash(o.arguments)] == 0]
        figures[policy] = {
            "calls": len(outcomes),
            "statuses": dict(statuses),
            "duringOutage": during.by_status(),
            "completed": len(completed),
            "auditRows": sum(recorded.values()),
            "quotaCounter": used.get(f"tenant:t-{policy}", 0),
        }
        assert not lost, f"{policy}: audit records lost for {len(lost)} completed calls, e.g. {lost[:3]}"
        # Delivery is at-least-once: a batch whose commit acknowledgement was lost in the cut is
        # written again, so a few duplicates are possible, but never a record of a call that did not complete.
        completed_hashes = {argument_hash(o.arguments) for o in completed}
        assert set(recorded) <= completed_hashes, figures[policy]
        figures[policy]["auditDuplicates"] = sum(recorded.values()) - len(recorded)
        if policy == "closed":
            assert set(statuses) <= {200, 503}, figures[policy]
            assert during.by_status().get(503, 0) > 0, "fail-closed gateway admitted every call during the outage"
            refused = next(o for o in during.outcomes if o.status == 503)
            assert refused.body is not None and "limitsWhenStoreDown" in refused.body["error"]["message"]
            assert refused.body["error"]["code"] == -32053
            # Admitted calls were counted exactly (the counter never runs ahead of or behind them).
            assert used[f"tenant:t-{policy}"] == len(completed), figures[policy]
        else:
            assert set(statuses) == {200}, figures[policy]
            assert len(during.completed()) == len(during.outcomes) > 0
            # Calls admitted while the database was away are not counted; all others are.
            assert 0 < used[f"tenant:t-{policy}"] <= len(completed)
    return figures
