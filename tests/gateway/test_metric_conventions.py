"""The real /metrics of a gateway, an adapter and the operator follow Prometheus' conventions.

A gateway with an adapter and a real upstream serves tool calls from several API keys, an
unknown tool, a refused credential, a quota refusal and a policy rule's refusal; then each exposition is checked by
tests/support/metric_conventions.py, and no key, caller or argument shows up in any label.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from mcp_operator import health

from tests.gateway.support import (
    ADMIN_HEADERS,
    Spawn,
    modern_call,
    modern_headers,
    profile,
    start_adapter,
    start_feature,
    start_gateway,
)
from tests.gateway.test_caller_scope import new_key
from tests.support.metric_conventions import families, label_values, metric_names, problems
from tests.support.processes import free_port

GOOD = """# HELP mcp_gateway_calls_total Calls
# TYPE mcp_gateway_calls_total counter
mcp_gateway_calls_total{tenant="a"} 1.0
"""


def test_the_checker_finds_each_kind_of_deviation() -> None:
    """The guard can fail: every rule trips on an exposition that breaks it."""
    assert problems(GOOD) == []
    bad = {
        "prefix": "# HELP calls_total x\n# TYPE calls_total counter\ncalls_total 1.0\n",
        "unit": "# HELP mcp_gateway_latency_milliseconds x\n# TYPE mcp_gateway_latency_milliseconds gauge\n"
        "mcp_gateway_latency_milliseconds 1.0\n",
        "counter suffix": "# HELP mcp_gateway_calls x\n# TYPE mcp_gateway_calls gauge\nmcp_gateway_calls_total 1.0\n",
        "histogram unit": "# HELP mcp_gateway_wait x\n# TYPE mcp_gateway_wait histogram\n"
        'mcp_gateway_wait_bucket{le="+Inf"} 1.0\nmcp_gateway_wait_count 1.0\nmcp_gateway_wait_sum 1.0\n',
        "label": GOOD.replace('tenant="a"', 'api_key="k1"'),
        "info": "# HELP mcp_gateway_build_info x\n# TYPE mcp_gateway_build_info gauge\nmcp_gateway_build_info 2.0\n",
    }
    for what, text in bad.items():
        assert problems(text), what


def scrape(url: str, **kwargs: Any) -> str:
    answer = httpx.get(url, timeout=10, **kwargs)
    assert answer.status_code == 200, answer.text
    return answer.text


def test_gateway_and_adapter_metrics_follow_the_conventions(
    spawn: Spawn, tmp_path: Path, routing: Callable[[dict[str, Any]], Path]
) -> None:
    adapter = start_adapter(spawn, tmp_path, start_feature(spawn)[1])
    tenants = [{"id": "acme", "limits": {"quota": {"daily": 1000, "monthly": 20000}}}]
    limited = profile("acme-tight", "acme", [("feat", adapter)], limits={"quota": {"daily": 1}})
    rule = {"name": "no-add", "effect": "deny", "when": 'name == "add"', "kinds": ["tool"]}
    ruled = profile("acme-ruled", "acme", [("feat", adapter)], policy={"rules": [rule]})
    profiles = [profile("acme-dev", "acme", [("feat", adapter)]), limited, ruled]
    config = routing({"tenants": tenants, "profiles": profiles})
    gateway = start_gateway(spawn, config)

    keys = [new_key(gateway, "acme") for _ in range(3)]
    secret_text = "argument-" + secrets.token_hex(8)
    for auth in keys:
        for tool in ("echo", "no-such-tool-" + secrets.token_hex(4)):
            headers = modern_headers("tools/call", tool, **auth)
            httpx.post(gateway.url("acme-dev"), json=modern_call(tool, {"text": secret_text}), headers=headers)
        headers = modern_headers("tools/call", "echo", **auth)
        for _ in range(2):  # the second call of each key exceeds acme-tight's quota of 1 per caller
            httpx.post(gateway.url("acme-tight"), json=modern_call("echo", {"text": "q"}), headers=headers)
        headers = modern_headers("tools/call", "add", **auth)  # refused by a policy rule
        httpx.post(gateway.url("acme-ruled"), json=modern_call("add", {"a": 1, "b": 2}), headers=headers)
    wrong = "Bearer wrong-" + secrets.token_hex(8)
    refused = httpx.post(
        gateway.url("acme-dev"),
        json=modern_call("echo", {}),
        headers=modern_headers("tools/call", "echo", Authorization=wrong),
    )
    assert refused.status_code == 401

    gateway_text = scrape(f"{gateway.base}/metrics", headers=ADMIN_HEADERS)
    adapter_text = scrape(adapter.removesuffix("/mcp") + "/metrics")
    for text in (gateway_text, adapter_text):
        assert problems(text) == []

    # The traffic above reached the series the alerts and dashboard use.
    names = metric_names(gateway_text)
    assert {
        "mcp_gateway_tool_calls_total",
        "mcp_gateway_limit_rejections_total",
        "mcp_gateway_auth_failures_total",
        "mcp_gateway_policy_refusals_total",
    } <= names
    assert 'mcp_gateway_tenant_quota_limit{period="daily",tenant="acme"} 1000.0' in gateway_text
    assert 'kind="quota"' in gateway_text
    assert "mcp_adapter_calls_total" in metric_names(adapter_text)

    # Bounded: three keys made the same series one key would have; no identity or input in a label.
    values = label_values(gateway_text) | label_values(adapter_text)
    for auth in keys:
        key = auth["Authorization"].removeprefix("Bearer ")
        assert not any(key in v or v in key for v in values if len(v) > 6), key
    assert not any(secret_text in v or "wrong-" in v for v in values)
    tool_labels = {f.name: f.labels for f in families(gateway_text)}
    assert "tool" in tool_labels["mcp_gateway_tool_calls"]


def test_operator_metrics_follow_the_conventions() -> None:
    async def serve_and_scrape() -> str:
        port = free_port()
        runner = await health.start(port, health.HealthState())
        try:
            async with httpx.AsyncClient() as client:
                answer = await client.get(f"http://127.0.0.1:{port}/metrics")
        finally:
            await runner.cleanup()
        assert answer.status_code == 200
        return answer.text

    text = asyncio.run(serve_and_scrape())
    assert problems(text) == []
    names = metric_names(text)
    assert {"mcp_operator_reconciles_total", "mcp_operator_reconcile_errors_total"} <= names
    assert 'mcp_operator_reconcile_errors_total{controller="routing"} 0.0' in text
