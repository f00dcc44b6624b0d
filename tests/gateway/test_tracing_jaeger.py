"""One tool call is one trace in a real Jaeger: gateway → adapter → upstream, read back from Jaeger's API.

Jaeger's all-in-one (built by scripts/build-tools.sh, in-memory storage) receives OTLP/HTTP from a
real gateway and adapter configured only by the standard `OTEL_*` variables; the upstream is the
feature server. The test queries `GET /api/traces/{id}` and checks the spans, their parents,
their attributes, and that no argument or credential reached Jaeger.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.support import Spawn, modern_call, modern_headers, profile, start_feature, start_gateway
from tests.gateway.test_caller_scope import new_key
from tests.gateway.test_tracing import start_traced_adapter
from tests.support.processes import free_port
from tests.support.tools import require_tool

pytestmark = pytest.mark.late_tools
WAIT_SECONDS = 30.0  # a bound on the exporters' batching and Jaeger's ingestion, not a performance expectation
PORT_FLAGS = (
    "collector.grpc-server.host-port",
    "collector.http-server.host-port",
    "collector.otlp.grpc.host-port",
    "query.grpc-server.host-port",
    "processor.jaeger-compact.server-host-port",
    "processor.jaeger-binary.server-host-port",
    "processor.zipkin-compact.server-host-port",
    "http-server.host-port",
)


@dataclass(frozen=True)
class Jaeger:
    otlp: str  # OTLP/HTTP base URL for OTEL_EXPORTER_OTLP_ENDPOINT
    query: str  # the query service (API and UI)


def start_jaeger(spawn: Spawn, ui: Path | None = None) -> Jaeger:
    """The all-in-one on loopback ports; `ui`: Jaeger UI's built assets to serve (scripts/build-jaeger-ui.sh)."""
    otlp, query, admin = free_port(), free_port(), free_port()
    cmd = [str(require_tool("jaeger-all-in-one"))]
    cmd += [f"--{flag}=127.0.0.1:{free_port()}" for flag in PORT_FLAGS]  # loopback only, never a fixed port
    cmd += [
        f"--collector.otlp.http.host-port=127.0.0.1:{otlp}",
        f"--query.http-server.host-port=127.0.0.1:{query}",
        f"--admin.http.host-port=127.0.0.1:{admin}",
        "--log-level=warn",
    ]
    if ui is not None:
        cmd.append(f"--query.static-files={ui}")
    spawn(cmd, name="jaeger", env={"SPAN_STORAGE_TYPE": "memory"}, ready_url=f"http://127.0.0.1:{admin}/", timeout=60)
    return Jaeger(f"http://127.0.0.1:{otlp}", f"http://127.0.0.1:{query}")


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    span_id: str
    parent: str
    tags: dict[str, Any]


def fetch_trace(jaeger: Jaeger, trace_id: str, done: Callable[[list[Span]], bool]) -> tuple[list[Span], str]:
    """The trace's spans as Jaeger's API returns them (and the raw answer), once `done` says all arrived."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        answer = httpx.get(f"{jaeger.query}/api/traces/{trace_id}", timeout=10)
        spans = parse_trace(answer.json()) if answer.status_code == 200 else []
        if done(spans) or time.monotonic() > deadline:
            return spans, answer.text
        time.sleep(0.2)


def parse_trace(body: dict[str, Any]) -> list[Span]:
    spans = []
    for trace in body.get("data") or []:
        services = {pid: p["serviceName"] for pid, p in trace["processes"].items()}
        for s in trace["spans"]:
            parents = [r["spanID"] for r in s.get("references", []) if r["refType"] == "CHILD_OF"]
            tags = {t["key"]: t["value"] for t in s.get("tags", [])}
            spans.append(Span(services[s["processID"]], s["operationName"], s["spanID"], (parents or [""])[0], tags))
    return spans


def one(spans: list[Span], service: str, name: str, kind: str | None = None) -> Span:
    found = [s for s in spans if s.service == service and s.name == name and kind in (None, s.tags.get("span.kind"))]
    assert len(found) == 1, f"{service}/{name}/{kind}: {[(s.service, s.name, s.tags.get('span.kind')) for s in spans]}"
    return found[0]


def test_one_tool_call_is_one_trace_in_jaeger(
    spawn: Spawn, tmp_path: Path, routing: Callable[[dict[str, Any]], Path]
) -> None:
    jaeger = start_jaeger(spawn)
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp, "OTEL_BSP_SCHEDULE_DELAY": "50"}
    adapter = start_traced_adapter(spawn, tmp_path, start_feature(spawn)[1], env)
    config = routing({"tenants": [{"id": "acme"}], "profiles": [profile("acme-dev", "acme", [("feat", adapter)])]})
    gateway = start_gateway(spawn, config, env=env)
    auth = new_key(gateway, "acme")

    # A first call connects the gateway to the adapter (discovery, in a trace of its own): the one
    # checked below is a steady-state call.
    warm_up = httpx.post(
        gateway.url("acme-dev"),
        json=modern_call("echo", {"text": "x"}),
        headers=modern_headers("tools/call", "echo", **auth),
    )
    assert warm_up.status_code == 200, warm_up.text
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    secret_text = "argument-" + secrets.token_hex(8)
    headers = modern_headers("tools/call", "echo", traceparent=f"00-{trace_id}-{client_span}-01", **auth)
    answer = httpx.post(gateway.url("acme-dev"), json=modern_call("echo", {"text": secret_text}), headers=headers)
    assert answer.status_code == 200 and secret_text in answer.text

    def complete(spans: list[Span]) -> bool:
        upstream_calls = [s for s in spans if s.service == "mcp-adapter" and s.tags.get("span.kind") == "client"]
        return bool(upstream_calls) and any(
            s.service == "mcp-gateway" and s.tags.get("span.kind") == "server" for s in spans
        )

    spans, raw = fetch_trace(jaeger, trace_id, complete)
    gw_server = one(spans, "mcp-gateway", "tools/call echo", "server")
    auth_span = one(spans, "mcp-gateway", "mcp.gateway.auth")
    policy = one(spans, "mcp-gateway", "mcp.gateway.policy")
    limits = one(spans, "mcp-gateway", "mcp.gateway.limits")
    gw_call = one(spans, "mcp-gateway", "tools/call echo", "client")
    ad_server = one(spans, "mcp-adapter", "tools/call echo", "server")
    ad_upstream = [s for s in spans if s.service == "mcp-adapter" and s.tags.get("span.kind") == "client"]
    assert len(ad_upstream) == 1

    # One trace, one chain: client -> gateway (auth, policy, limits) -> its call to the adapter (the relay)
    # -> adapter -> its call to the upstream.
    assert gw_server.parent == client_span
    assert {auth_span.parent, policy.parent, limits.parent, gw_call.parent} == {gw_server.span_id}
    assert ad_server.parent == gw_call.span_id
    assert ad_upstream[0].parent == ad_server.span_id
    assert gw_server.tags["mcp.method.name"] == "tools/call"
    assert gw_server.tags["gen_ai.tool.name"] == "echo"
    assert gw_server.tags["mcp.gateway.tenant"] == "acme" and gw_server.tags["mcp.gateway.profile"] == "acme-dev"
    assert ad_upstream[0].tags["mcp.gateway.upstream"] == "feat"
    assert not any(s.tags.get("error") for s in spans), json.dumps([s.tags for s in spans])

    # Nothing secret reached the backend: not the argument, not the key.
    key = auth["Authorization"].removeprefix("Bearer ")
    assert secret_text not in raw and key not in raw
