"""A real Prometheus scrapes a real gateway, adapter and the operator's metrics endpoint; the
chart's dashboard queries and alert expressions run against what it stored.

Prometheus (built by scripts/build-tools.sh) scrapes every second. The traffic covers what the
dashboard shows: calls that succeed, upstream errors, an unreachable upstream, a quota refusal,
a rejected credential and a call refused by a policy rule. Every dashboard query must parse,
evaluate and return series; every alert expression must evaluate; every metric either of them
names must be one Prometheus stored.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from mcp_operator import health
from mcp_operator import metrics as operator_metrics

from tests.chart.support import one, render
from tests.gateway.support import (
    ADMIN_TOKEN,
    Spawn,
    modern_call,
    modern_headers,
    profile,
    start_adapter,
    start_feature,
    start_gateway,
)
from tests.gateway.test_caller_scope import new_key
from tests.support.processes import free_port
from tests.support.tools import require_tool

pytestmark = pytest.mark.late_tools

DASHBOARD = Path(__file__).resolve().parents[2] / "charts" / "mcp-gateway" / "dashboards" / "mcp-gateway.json"
METRIC = re.compile(r"\bmcp_[a-z0-9_]+")
NO_ECHO = {"name": "no-echo", "effect": "deny", "when": 'name == "echo"', "kinds": ["tool"]}
WAIT_SECONDS = 60.0  # a bound on scrapes arriving, not a performance expectation


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, query) of every panel target, Grafana's variables filled in as Grafana would for 'All'."""
    board = json.loads(DASHBOARD.read_text())
    out = []
    for panel in board["panels"]:
        for target in panel["targets"]:
            out.append((panel["title"], grafana_to_promql(target["expr"])))
    return out


def grafana_to_promql(expr: str) -> str:
    expr = expr.replace("$__rate_interval", "1m")
    return re.sub(r"\$(namespace|tenant|profile)\b", ".*", expr)


def alert_expressions() -> list[tuple[str, str]]:
    rule = one(render(sets=("monitoring.prometheusRule.enabled=true",)), "PrometheusRule")
    return [(r["alert"], r["expr"]) for g in rule["spec"]["groups"] for r in g["rules"]]


@contextmanager
def operator_metrics_endpoint() -> Iterator[str]:
    """The operator's real health server (/metrics) on its own event loop, as the operator runs it."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    port = free_port()
    runner = asyncio.run_coroutine_threadsafe(health.start(port, health.HealthState()), loop).result(10)
    operator_metrics.reconciled("routing", ok=True)
    operator_metrics.reconciled("upstream", ok=False)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def start_prometheus(spawn: Spawn, folder: Path, targets: dict[str, tuple[str, str | None]]) -> str:
    jobs = []
    for job, (address, token) in targets.items():
        scrape: dict[str, Any] = {"job_name": job, "static_configs": [{"targets": [address]}]}
        if token:
            scrape["authorization"] = {"type": "Bearer", "credentials": token}
        jobs.append(scrape)
    config = folder / "prometheus.yml"
    config.write_text(yaml.safe_dump({"global": {"scrape_interval": "1s"}, "scrape_configs": jobs}))
    port = free_port()
    cmd = [
        str(require_tool("prometheus")),
        f"--config.file={config}",
        f"--storage.tsdb.path={folder / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    base = f"http://127.0.0.1:{port}"
    spawn(cmd, name="prometheus", ready_url=f"{base}/-/ready", timeout=60)
    return base


def query(base: str, promql: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{base}/api/v1/query", params={"query": promql}, timeout=10)
    body = answer.json()
    assert answer.status_code == 200 and body["status"] == "success", f"{promql}\n{answer.text}"
    return list(body["data"]["result"])


def drive_traffic(gateway_url: Callable[[str], str], auth: dict[str, str]) -> None:
    def call(profile_id: str, tool: str, arguments: dict[str, Any], headers: dict[str, str]) -> None:
        body = modern_call(tool, arguments)
        httpx.post(
            gateway_url(profile_id), json=body, headers=modern_headers("tools/call", tool, **headers), timeout=10
        )

    for _ in range(3):
        call("acme-dev", "echo", {"text": "hi"}, auth)
        call("acme-dev", "protocol_error", {"code": -32001, "message": "upstream said no"}, auth)
        call("acme-down", "echo", {"text": "hi"}, auth)
        call("acme-tight", "echo", {"text": "hi"}, auth)  # the second and later: quota refusals
        call("acme-dev", "echo", {"text": "hi"}, {"Authorization": "Bearer wrong-key"})
        call("acme-ruled", "echo", {"text": "hi"}, auth)  # refused by a policy rule


def test_dashboard_and_alerts_evaluate_against_a_real_prometheus(
    spawn: Spawn, tmp_path: Path, routing: Callable[[dict[str, Any]], Path]
) -> None:
    adapter = start_adapter(spawn, tmp_path, start_feature(spawn)[1])
    down = f"http://127.0.0.1:{free_port()}/mcp"  # nothing listens: an unreachable upstream
    profiles = [
        profile("acme-dev", "acme", [("feat", adapter)]),
        profile("acme-down", "acme", [("gone", down)]),
        profile("acme-tight", "acme", [("feat", adapter)], limits={"quota": {"daily": 1}}),
        profile("acme-ruled", "acme", [("feat", adapter)], policy={"rules": [NO_ECHO]}),
    ]
    config = routing({"tenants": [{"id": "acme", "limits": {"quota": {"daily": 100000}}}], "profiles": profiles})
    gateway = start_gateway(spawn, config)
    auth = new_key(gateway, "acme")

    with operator_metrics_endpoint() as operator_address:
        targets = {
            "gateway": (f"127.0.0.1:{gateway.port}", ADMIN_TOKEN),
            "adapter": (adapter.removeprefix("http://").removesuffix("/mcp"), None),
            "operator": (operator_address, None),
        }
        prometheus = start_prometheus(spawn, tmp_path, targets)
        queries = dashboard_queries()
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            drive_traffic(gateway.url, auth)
            empty = [(title, q) for title, q in queries if not query(prometheus, q)]
            if not empty or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert not empty, "dashboard queries without series:\n" + "\n".join(f"{t}: {q}" for t, q in empty)

        up = {r["metric"]["job"]: r["value"][1] for r in query(prometheus, "up")}
        assert up == {"gateway": "1", "adapter": "1", "operator": "1"}
        stored = set(httpx.get(f"{prometheus}/api/v1/label/__name__/values", timeout=10).json()["data"])

        for alert, expr in alert_expressions():
            query(prometheus, expr)  # parses and evaluates (it may well be quiet: nothing is wrong enough)
            missing = set(METRIC.findall(expr)) - stored
            assert not missing, f"{alert} names metrics nobody exports: {missing}"
        for title, q in queries:
            missing = set(METRIC.findall(q)) - stored
            assert not missing, f"panel {title!r} names metrics nobody exports: {missing}"

        # The failures driven above are visible as such, not only as series.
        failing = query(prometheus, 'sum by (profile) (mcp_gateway_tool_calls_total{outcome="error"}) > 0')
        assert [r["metric"]["profile"] for r in failing] == ["acme-dev"]  # the upstream's protocol errors
        refusals = query(prometheus, 'sum by (profile) (mcp_gateway_limit_rejections_total{kind="quota"}) > 0')
        assert [r["metric"]["profile"] for r in refusals] == ["acme-tight"]
        by_rule = query(prometheus, "sum by (profile, rule) (mcp_gateway_policy_refusals_total) > 0")
        assert [(r["metric"]["profile"], r["metric"]["rule"]) for r in by_rule] == [("acme-ruled", "no-echo")]
        stalled = query(prometheus, "time() - mcp_operator_routing_last_success_timestamp_seconds < 600")
        assert stalled, "the operator's last routing render is recent"
