"""Aggregation at scale: `tools/list` latency and gateway memory for big profiles.

Two profiles on one gateway: ten upstreams of 100 tools each (one process
serving ten separate MCP endpoints) and one adapter exposing a generated
500-operation OpenAPI document. Memory is the gateway's RSS before any profile
is used, then after each profile's backend is built and listed.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from bench.client import call, list_all_tools, timed, timings_ms
from bench.openapi_doc import document
from bench.stack import Stack, rss_mb

UPSTREAMS = 10
TOOLS_PER_UPSTREAM = 100
OPENAPI_OPERATIONS = 500
SAMPLES = 20


def _routing(many_base: str, openapi_url: str) -> dict[str, Any]:
    many = [{"name": f"u{i}", "url": f"{many_base}/u{i}/mcp"} for i in range(UPSTREAMS)]
    return {
        "tenants": [{"id": "bench"}],
        "profiles": [
            {"id": "many", "tenant": "bench", "upstreams": many, "auth": {"mode": "none"}},
            {
                "id": "openapi",
                "tenant": "bench",
                "upstreams": [{"name": "api", "url": openapi_url, "prefix": "never"}],
                "auth": {"mode": "none"},
            },
        ],
    }


def _listing(client: httpx.Client, url: str, expected: int) -> dict[str, Any]:
    cold_ms, count = timed(list_all_tools, client, url)
    if count != expected:
        raise RuntimeError(f"tools/list at {url} returned {count} tools, expected {expected}")
    warm = [timed(list_all_tools, client, url)[0] for _ in range(SAMPLES)]
    return {"tools": count, "first_list_ms": round(cold_ms, 1), **timings_ms(warm)}


def _calls(client: httpx.Client, url: str, tool: str) -> dict[str, Any]:
    """tools/call latency on a big profile: per-call work must not grow with the catalog."""
    arguments = {"name": tool, "arguments": {"query": "bench", "limit": 3}}
    call(client, url, "tools/call", arguments)
    return timings_ms([timed(call, client, url, "tools/call", arguments)[0] for _ in range(SAMPLES)])


def run() -> dict[str, Any]:
    with Stack("aggregation") as stack:
        many_base, _ = stack.python_module(
            "many", "bench.manytools_server", str(UPSTREAMS), str(TOOLS_PER_UPSTREAM), ready_path="/u0/mcp"
        )
        spec = stack.workdir / "openapi.json"
        spec.write_text(json.dumps(document(OPENAPI_OPERATIONS)))
        source = {"name": "api", "type": "openapi", "spec": str(spec), "allowPrivateNetwork": True}
        openapi_url, adapter_pid = stack.adapter("openapi", {"server": {"name": "bench-openapi"}, "sources": [source]})
        gateway = stack.gateway("aggregation", _routing(many_base, openapi_url))
        out: dict[str, Any] = {"gateway_idle_rss_mb": round(rss_mb(gateway.pid), 1)}
        with httpx.Client(timeout=60) as client:
            out["reference_one_upstream_direct"] = _listing(client, f"{many_base}/u0/mcp", TOOLS_PER_UPSTREAM)
            out["many_10x100"] = _listing(client, gateway.url("many"), UPSTREAMS * TOOLS_PER_UPSTREAM)
            out["many_10x100"]["gateway_rss_mb_after"] = round(rss_mb(gateway.pid), 1)
            out["many_10x100_tools_call"] = _calls(client, gateway.url("many"), "u9_tool_99")
            out["openapi_500_adapter_direct"] = _listing(client, openapi_url, OPENAPI_OPERATIONS)
            out["openapi_500_adapter_direct"]["adapter_rss_mb"] = round(rss_mb(adapter_pid), 1)
            out["openapi_500"] = _listing(client, gateway.url("openapi"), OPENAPI_OPERATIONS)
            out["openapi_500"]["gateway_rss_mb_after"] = round(rss_mb(gateway.pid), 1)
    return out
