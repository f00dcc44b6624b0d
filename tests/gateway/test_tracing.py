"""OpenTelemetry spans: one tool call through a real gateway, adapter and upstream is one trace.

The gateway and the adapter run as real processes with the official SDK and OTLP/HTTP exporter,
configured only by the standard `OTEL_*` variables, and export to a loopback OTLP receiver (a
stand-in for Jaeger, tests/support/otlp_receiver.py). The upstream is the feature server.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from mcp_common import tracing

from tests.gateway.support import (
    MODERN,
    Spawn,
    mcp_client,
    modern_call,
    modern_headers,
    profile,
    rpc,
    start_feature,
    start_gateway,
)
from tests.gateway.test_caller_scope import new_key
from tests.support.otlp_receiver import STATUS_ERROR, OtlpReceiver, ReceivedSpan, start_otlp_receiver
from tests.support.processes import free_port

SPAN_KIND_SERVER, SPAN_KIND_CLIENT = 2, 3
WAIT_SECONDS = 30.0  # a bound on the exporters' batching, not a performance expectation


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    started = start_otlp_receiver()
    yield started
    started.shutdown()


def otel_env(receiver: OtlpReceiver) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "50"}


def start_traced_adapter(spawn: Spawn, folder: Path, upstream_url: str, env: dict[str, str]) -> str:
    port = free_port()
    config = folder / "adapter.yaml"
    config.write_text(yaml.safe_dump({"sources": [{"name": "feat", "type": "mcp", "url": upstream_url}]}))
    cmd = [sys.executable, "-m", "mcp_adapter.cli", "--config", str(config), "--port", str(port)]
    spawn(cmd, name="adapter-traced", env=env, ready_url=f"http://127.0.0.1:{port}/readyz", timeout=60)
    return f"http://127.0.0.1:{port}/mcp"


def trace_of(receiver: OtlpReceiver, trace_id: str, done: Callable[[list[ReceivedSpan]], bool]) -> list[ReceivedSpan]:
    """The spans of one trace, once `done` says all expected ones arrived (bounded wait)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        spans = [s for s in receiver.received() if s.trace_id == trace_id]
        if done(spans) or time.monotonic() > deadline:
            return spans
        time.sleep(0.05)


def one(spans: list[ReceivedSpan], service: str, name: str, kind: int | None = None) -> ReceivedSpan:
    found = [s for s in spans if s.service == service and s.name == name and kind in (None, s.kind)]
    assert len(found) == 1, f"{service}/{name}: {[(s.service, s.name) for s in spans]}"
    return found[0]


def all_values(spans: list[ReceivedSpan]) -> str:
    return repr([(s.name, s.status_message, s.attributes) for s in spans])


def test_tool_call_is_one_trace_across_gateway_and_adapter(
    spawn: Spawn, tmp_path: Path, routing: Callable[[dict[str, Any]], Path], receiver: OtlpReceiver
) -> None:
    env = otel_env(receiver)
    upstream = start_feature(spawn)[1]  # no tracing of its own: a third-party server
    adapter = start_traced_adapter(spawn, tmp_path, upstream, env)
    config = routing({"tenants": [{"id": "acme"}], "profiles": [profile("acme-dev", "acme", [("feat", adapter)])]})
    gateway = start_gateway(spawn, config, env=env)
    auth = new_key(gateway, "acme")
    key = auth["Authorization"].removeprefix("Bearer ")

    # The client's own span: the gateway's server span must become its child, in its trace.
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    secret_text = "argument-" + secrets.token_hex(8)
    headers = modern_headers("tools/call", "echo", traceparent=f"00-{trace_id}-{client_span}-01", **auth)
    answer = httpx.post(gateway.url("acme-dev"), json=modern_call("echo", {"text": secret_text}), headers=headers)
    assert answer.status_code == 200, answer.text
    assert secret_text in answer.text

    def complete(spans: list[ReceivedSpan]) -> bool:
        return sum(s.service == "mcp-adapter" and s.kind == SPAN_KIND_CLIENT for s in spans) >= 1 and any(
            s.service == "mcp-gateway" and s.kind == SPAN_KIND_SERVER for s in spans
        )

    spans = trace_of(receiver, trace_id, complete)
    gw_server = one(spans, "mcp-gateway", "tools/call echo", SPAN_KIND_SERVER)
    auth_span = one(spans, "mcp-gateway", "mcp.gateway.auth")
    policy = one(spans, "mcp-gateway", "mcp.gateway.policy")
    limits = one(spans, "mcp-gateway", "mcp.gateway.limits")
    gw_call = one(spans, "mcp-gateway", "tools/call echo", SPAN_KIND_CLIENT)
    ad_server = one(spans, "mcp-adapter", "tools/call echo", SPAN_KIND_SERVER)
    ad_upstream = [s for s in spans if s.service == "mcp-adapter" and s.kind == SPAN_KIND_CLIENT]
    assert len(ad_upstream) == 1, all_values(spans)

    # Parent links: client -> gateway server -> (auth, policy, limits, the call to the adapter: the relay)
    # -> adapter server -> the adapter's call to the upstream.
    assert gw_server.parent_span_id == client_span
    assert auth_span.parent_span_id == gw_server.span_id
    assert policy.parent_span_id == gw_server.span_id and limits.parent_span_id == gw_server.span_id
    assert gw_call.parent_span_id == gw_server.span_id
    assert not any(s.name == "mcp.gateway.relay" for s in spans)  # a tool call's relay is its CLIENT span
    assert ad_server.parent_span_id == gw_call.span_id
    assert ad_upstream[0].parent_span_id == ad_server.span_id

    assert gw_server.attributes["mcp.method.name"] == "tools/call"
    assert gw_server.attributes["gen_ai.tool.name"] == "echo"
    assert gw_server.attributes["mcp.gateway.tenant"] == "acme"
    assert gw_server.attributes["mcp.gateway.profile"] == "acme-dev"
    assert gw_server.attributes["http.response.status_code"] == 200
    assert gw_server.attributes["mcp.gateway.upstream"] == "feat"
    assert gw_call.attributes["mcp.gateway.upstream"] == "feat"
    assert ad_upstream[0].attributes["mcp.gateway.upstream"] == "feat"
    assert ad_upstream[0].attributes["gen_ai.tool.name"] == "echo"
    assert ad_server.attributes["mcp.method.name"] == "tools/call"
    assert all(s.status_code != STATUS_ERROR for s in spans), all_values(spans)

    # Another request than a tool call: the relay is a span of its own.
    trace_id = secrets.token_hex(16)
    headers = modern_headers("tools/list", traceparent=f"00-{trace_id}-{secrets.token_hex(8)}-01", **auth)
    answer = httpx.post(
        gateway.url("acme-dev"),
        json=rpc("tools/list", {"_meta": modern_call("echo", {})["params"]["_meta"]}, 2),
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    spans = trace_of(receiver, trace_id, lambda found: any(s.name == "mcp.gateway.relay" for s in found))
    # (The MCP SDK's server, which answers the list, adds a SERVER span of its own under the relay.)
    ours = [s for s in spans if s.kind == SPAN_KIND_SERVER and s.attributes.get("mcp.gateway.tenant") == "acme"]
    assert len(ours) == 1 and ours[0].name == "tools/list", all_values(spans)
    assert one(spans, "mcp-gateway", "mcp.gateway.relay").parent_span_id == ours[0].span_id

    # Never arguments or credentials, in any attribute or status message of any span received.
    everything = all_values(receiver.received())
    for secret in (secret_text, key, auth["Authorization"]):
        assert secret not in everything


async def test_a_2026_07_28_clients_trace_context_in_meta_is_continued(
    spawn: Spawn, tmp_path: Path, routing: Callable[[dict[str, Any]], Path], receiver: OtlpReceiver
) -> None:
    """A stateless client names its span in `params._meta` (SEP-414), not in a header: the trace goes on from it."""
    env = otel_env(receiver)
    adapter = start_traced_adapter(spawn, tmp_path, start_feature(spawn)[1], env)
    acme = profile("acme-dev", "acme", [("feat", adapter)])
    config = routing({"gateway": {"maxRequestBytes": 4096}, "tenants": [{"id": "acme"}], "profiles": [acme]})
    gateway = start_gateway(spawn, config, env=env)
    auth = new_key(gateway, "acme")

    # The real MCP client, 2026-07-28 mode, no traceparent header: the trace context rides in `_meta`.
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    meta = {"traceparent": f"00-{trace_id}-{client_span}-01", "tracestate": "vendor=1"}
    async with mcp_client(gateway.url("acme-dev"), auth, mode=MODERN) as client:
        result = await client.call_tool("echo", {"text": "meta"}, meta=meta)
    assert not result.is_error

    def complete(spans: list[ReceivedSpan]) -> bool:
        return any(s.service == "mcp-adapter" and s.kind == SPAN_KIND_CLIENT for s in spans) and any(
            s.service == "mcp-gateway" and s.kind == SPAN_KIND_SERVER for s in spans
        )

    spans = trace_of(receiver, trace_id, complete)
    gw_server = one(spans, "mcp-gateway", "tools/call echo", SPAN_KIND_SERVER)
    gw_call = one(spans, "mcp-gateway", "tools/call echo", SPAN_KIND_CLIENT)
    ad_server = one(spans, "mcp-adapter", "tools/call echo", SPAN_KIND_SERVER)
    assert gw_server.parent_span_id == client_span  # continued from `_meta`
    assert ad_server.parent_span_id == gw_call.span_id  # and passed on to the adapter (as a header)

    # Both there: the header wins over `_meta`.
    header_trace, header_span = secrets.token_hex(16), secrets.token_hex(8)
    call = modern_call("echo", {"text": "both"})
    call["params"]["_meta"]["traceparent"] = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
    headers = modern_headers("tools/call", "echo", traceparent=f"00-{header_trace}-{header_span}-01", **auth)
    answer = httpx.post(gateway.url("acme-dev"), json=call, headers=headers)
    assert answer.status_code == 200, answer.text
    spans = trace_of(receiver, header_trace, lambda found: any(s.kind == SPAN_KIND_SERVER for s in found))
    assert one(spans, "mcp-gateway", "tools/call echo", SPAN_KIND_SERVER).parent_span_id == header_span

    # The body is read ahead for its `_meta` only within the gateway's limit: a larger one is still refused.
    big = modern_call("echo", {"text": "x" * 8192})
    big["params"]["_meta"]["traceparent"] = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
    answer = httpx.post(gateway.url("acme-dev"), json=big, headers=modern_headers("tools/call", "echo", **auth))
    assert answer.status_code == 413, answer.text


async def test_meta_trace_context_passes_through_a_gateway_without_tracing(
    spawn: Spawn, tmp_path: Path, routing: Callable[[dict[str, Any]], Path], receiver: OtlpReceiver
) -> None:
    """Tracing off in the gateway: the client's `_meta` trace context still reaches the (traced) adapter."""
    adapter = start_traced_adapter(spawn, tmp_path, start_feature(spawn)[1], otel_env(receiver))
    config = routing({"tenants": [{"id": "acme"}], "profiles": [profile("acme-dev", "acme", [("feat", adapter)])]})
    gateway = start_gateway(spawn, config)
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    async with mcp_client(gateway.url("acme-dev"), new_key(gateway, "acme"), mode=MODERN) as client:
        result = await client.call_tool(
            "echo", {"text": "off"}, meta={"traceparent": f"00-{trace_id}-{client_span}-01"}
        )
    assert not result.is_error
    spans = trace_of(receiver, trace_id, lambda found: any(s.kind == SPAN_KIND_CLIENT for s in found))
    assert not any(s.service == "mcp-gateway" for s in spans)
    assert one(spans, "mcp-adapter", "tools/call echo", SPAN_KIND_SERVER).parent_span_id == client_span


async def test_handshake_era_tool_call_joins_the_clients_trace_too(
    spawn: Spawn, tmp_path: Path, routing: Callable[[dict[str, Any]], Path], receiver: OtlpReceiver
) -> None:
    """The SDK path (2025-11-25 sessions) rather than the pass-through: still one trace, adapter included."""
    env = otel_env(receiver)
    adapter = start_traced_adapter(spawn, tmp_path, start_feature(spawn)[1], env)
    config = routing({"tenants": [{"id": "acme"}], "profiles": [profile("acme-dev", "acme", [("feat", adapter)])]})
    gateway = start_gateway(spawn, config, env=env)
    trace_id = secrets.token_hex(16)
    headers = {**new_key(gateway, "acme"), "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
    async with mcp_client(gateway.url("acme-dev"), headers, mode="legacy") as client:
        result = await client.call_tool("echo", {"text": "legacy"})
    assert not result.is_error

    def ancestors(spans: list[ReceivedSpan], span: ReceivedSpan) -> list[ReceivedSpan]:
        by_id, found = {s.span_id: s for s in spans}, []
        while span.parent_span_id in by_id:
            span = by_id[span.parent_span_id]
            found.append(span)
        return found

    def is_gateway_server(s: ReceivedSpan) -> bool:
        return s.service == "mcp-gateway" and s.name == "tools/call echo" and s.kind == SPAN_KIND_SERVER

    def complete(spans: list[ReceivedSpan]) -> bool:
        # Gateway and adapter export in batches of their own: wait until the whole chain arrived.
        calls = [
            s
            for s in spans
            if s.service == "mcp-adapter" and s.name == "tools/call echo" and s.kind == SPAN_KIND_CLIENT
        ]
        return any(any(is_gateway_server(a) for a in ancestors(spans, c)) for c in calls)

    spans = trace_of(receiver, trace_id, complete)
    gw_server = one(spans, "mcp-gateway", "tools/call echo", SPAN_KIND_SERVER)
    upstream_call = one(spans, "mcp-adapter", "tools/call echo", SPAN_KIND_CLIENT)
    # Walk up from the adapter's call to the upstream: it must reach the gateway's span of this call.
    chain = ancestors(spans, upstream_call)
    assert gw_server in chain, [(s.service, s.name) for s in chain]
    assert any(s.service == "mcp-adapter" and s.kind == SPAN_KIND_SERVER for s in chain)


def test_refused_requests_are_error_spans(
    spawn: Spawn, tmp_path: Path, routing: Callable[[dict[str, Any]], Path], receiver: OtlpReceiver
) -> None:
    upstream = start_feature(spawn)[1]
    hidden = profile("acme-dev", "acme", [("feat", upstream)], policy={"tools": {"deny": ["echo"]}})
    config = routing({"tenants": [{"id": "acme"}], "profiles": [hidden]})
    gateway = start_gateway(spawn, config, env=otel_env(receiver))
    trace_id = secrets.token_hex(16)
    wrong = "Bearer wrong-" + secrets.token_hex(8)
    headers = modern_headers("tools/list", traceparent=f"00-{trace_id}-{secrets.token_hex(8)}-01", Authorization=wrong)
    answer = httpx.post(
        gateway.url("acme-dev"), json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=headers
    )
    assert answer.status_code == 401

    spans = trace_of(receiver, trace_id, lambda found: any(s.kind == SPAN_KIND_SERVER for s in found))
    server = next(s for s in spans if s.kind == SPAN_KIND_SERVER)
    auth_span = one(spans, "mcp-gateway", "mcp.gateway.auth")
    assert server.status_code == STATUS_ERROR and server.attributes["http.response.status_code"] == 401
    assert auth_span.status_code == STATUS_ERROR and auth_span.parent_span_id == server.span_id
    assert wrong.removeprefix("Bearer ") not in all_values(spans)

    # A tool the policy hides: HTTP 200 with a JSON-RPC error, still an error span, with the reason.
    trace_id = secrets.token_hex(16)
    headers = modern_headers("tools/call", "echo", traceparent=f"00-{trace_id}-{secrets.token_hex(8)}-01")
    headers.update(new_key(gateway, "acme"))
    answer = httpx.post(gateway.url("acme-dev"), json=modern_call("echo", {"text": "x"}), headers=headers)
    assert answer.status_code == 200 and "error" in answer.json()
    spans = trace_of(receiver, trace_id, lambda found: any(s.kind == SPAN_KIND_SERVER for s in found))
    server = one(spans, "mcp-gateway", "tools/call echo", SPAN_KIND_SERVER)
    assert server.status_code == STATUS_ERROR and server.attributes["mcp.gateway.refusal"] == "policy"
    assert server.status_message == "tool hidden by the profile's policy"
    policy = one(spans, "mcp-gateway", "mcp.gateway.policy")
    assert policy.status_code == STATUS_ERROR and policy.parent_span_id == server.span_id
    assert not any(s.name == "mcp.gateway.relay" for s in spans)  # refused before reaching any upstream


def test_trace_context_reaches_a_stdio_server_in_meta(spawn: Spawn, tmp_path: Path, receiver: OtlpReceiver) -> None:
    """A stdio upstream has no headers: the adapter's call carries the trace onward in `_meta`."""
    probe = Path(__file__).resolve().parents[1] / "adapter" / "servers" / "probe_server.py"
    source = {
        "name": "probe",
        "type": "stdio",
        "command": sys.executable,
        "args": [str(probe)],
        "prefixPolicy": "never",
    }
    config = tmp_path / "adapter.yaml"
    config.write_text(yaml.safe_dump({"sources": [source]}))
    port = free_port()
    cmd = [sys.executable, "-m", "mcp_adapter.cli", "--config", str(config), "--port", str(port)]
    spawn(
        cmd,
        name="adapter-stdio-traced",
        env=otel_env(receiver),
        ready_url=f"http://127.0.0.1:{port}/readyz",
        timeout=60,
    )

    trace_id = secrets.token_hex(16)
    headers = modern_headers("tools/call", "trace_meta", traceparent=f"00-{trace_id}-{secrets.token_hex(8)}-01")
    answer = httpx.post(f"http://127.0.0.1:{port}/mcp", json=modern_call("trace_meta", {}), headers=headers)
    assert answer.status_code == 200, answer.text
    seen = answer.json()["result"]["content"][0]["text"]
    assert seen.startswith(f"00-{trace_id}-"), seen  # the client's trace, onward into the stdio server
    spans = trace_of(receiver, trace_id, lambda found: any(s.kind == SPAN_KIND_CLIENT for s in found))
    assert seen.split("-")[2] in {s.span_id for s in spans if s.service == "mcp-adapter"}  # its parent: the adapter


SAMPLING_PROBE = """
import json
from mcp_common import tracing

tracing.setup("probe")
out = {}
for flags in ("01", "00"):
    parent = {"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-{flags}"}
    with tracing.server_span("probe", parent) as span:
        with tracing.child_span("step", client=True):
            out[flags] = {"recording": span.is_recording(), "outgoing": dict(tracing.outgoing())["traceparent"]}
tracing.flush()
print(json.dumps(out))
"""


@pytest.mark.parametrize(
    ("sampler", "recorded"),
    [("parentbased_always_on", {"01": True, "00": False}), ("always_off", {"01": False, "00": False})],
)
def test_the_sdks_sampler_decides_and_an_unsampled_trace_still_propagates(
    receiver: OtlpReceiver, sampler: str, recorded: dict[str, bool]
) -> None:
    """OTEL_TRACES_SAMPLER is the SDK's, as usual: our spans are recorded only when it keeps them,
    and a dropped request still passes its trace id on (flags 00), so the next hop drops it too."""
    env = {**os.environ, **otel_env(receiver), "OTEL_TRACES_SAMPLER": sampler}
    done = subprocess.run([sys.executable, "-c", SAMPLING_PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    for flags, kept in recorded.items():
        assert seen[flags]["recording"] is kept
        parts = seen[flags]["outgoing"].split("-")
        assert parts[1] == "ab" * 16 and parts[3] == ("01" if kept else "00")
    spans = [s for s in receiver.received() if s.service == "probe"]
    assert len(spans) == 2 * sum(recorded.values())  # a server span and its child per recorded request
    assert all(s.trace_id == "ab" * 16 for s in spans)


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, False),
    ],
)
def test_tracing_is_off_unless_the_standard_variables_ask_for_it(env: dict[str, str], on: bool) -> None:
    assert tracing.wanted(env) is on
