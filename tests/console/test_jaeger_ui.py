"""Jaeger's own UI shows one tool call as one trace: what an operator looking for a call sees.

The all-in-one (scripts/build-tools.sh) serves Jaeger UI v1.62.0's assets (scripts/build-jaeger-ui.sh,
built from the UI's source: no reachable registry serves them) with `--query.static-files`. A real
MCP client in 2026-07-28 mode calls a tool through a real gateway, adapter and upstream, naming its
span in `params._meta`; headless Chromium opens the trace's page and must see every span of the
call, gateway and adapter, and never the call's argument. The page is the README's picture:
`make trace-screenshot` runs this test with MCP_DOCS_TRACE_PNG=docs/trace.png.

Not in `make test` (marker `jaeger_ui`): the UI's build needs its source tree, which no registry
serves; `make trace-screenshot` and `pytest -m jaeger_ui` run it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.console.conftest import NewPage
from tests.gateway.support import (
    MODERN,
    Spawn,
    mcp_client,
    modern_call,
    modern_headers,
    profile,
    start_feature,
    start_gateway,
    write_config,
)
from tests.gateway.test_caller_scope import new_key
from tests.gateway.test_tracing import start_traced_adapter
from tests.gateway.test_tracing_jaeger import Span, fetch_trace, start_jaeger
from tests.support.processes import ARTIFACTS

pytestmark = [pytest.mark.late_tools, pytest.mark.jaeger_ui]
CACHE = Path(os.environ.get("MCP_GATEWAY_CACHE", Path.home() / ".cache" / "mcp-gateway"))
UI = Path(os.environ.get("MCP_TEST_JAEGER_UI", CACHE / "jaeger-ui-v1.62.0"))
SPAN_NAMES = ("tools/call echo", "mcp.gateway.auth", "mcp.gateway.policy", "mcp.gateway.limits")


@pytest.fixture
def routing(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    return lambda data: write_config(tmp_path / "routing.yaml", data)


async def test_jaeger_ui_shows_one_tool_call_as_one_trace(
    spawn: Spawn, tmp_path: Path, routing: Callable[[dict[str, Any]], Path], new_page: NewPage
) -> None:
    if not (UI / "index.html").exists():
        pytest.fail(f"{UI} has no Jaeger UI: run scripts/build-jaeger-ui.sh SOURCE (make trace-screenshot)")
    jaeger = start_jaeger(spawn, UI)
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp, "OTEL_BSP_SCHEDULE_DELAY": "50"}
    adapter = start_traced_adapter(spawn, tmp_path, start_feature(spawn)[1], env)
    config = routing({"tenants": [{"id": "acme"}], "profiles": [profile("acme-dev", "acme", [("feat", adapter)])]})
    gateway = start_gateway(spawn, config, env=env)
    auth = new_key(gateway, "acme")
    # A first call connects the gateway to the adapter (discovery, a trace of its own): the one shown is steady-state.
    warm_up = httpx.post(
        gateway.url("acme-dev"),
        json=modern_call("echo", {"text": "x"}),
        headers=modern_headers("tools/call", "echo", **auth),
    )
    assert warm_up.status_code == 200, warm_up.text

    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    argument = "argument-" + secrets.token_hex(8)
    async with mcp_client(gateway.url("acme-dev"), auth, mode=MODERN) as client:
        result = await client.call_tool(
            "echo", {"text": argument}, meta={"traceparent": f"00-{trace_id}-{client_span}-01"}
        )
    assert not result.is_error

    def complete(spans: list[Span]) -> bool:
        return any(s.service == "mcp-adapter" and s.tags.get("span.kind") == "client" for s in spans) and any(
            s.service == "mcp-gateway" and s.tags.get("span.kind") == "server" for s in spans
        )

    spans, _ = await asyncio.to_thread(fetch_trace, jaeger, trace_id, complete)
    assert complete(spans), spans

    watched = await new_page()
    page = watched.page
    await page.goto(f"{jaeger.query}/trace/{trace_id}")
    await page.get_by_text("mcp.gateway.limits").first.wait_for()
    shown = await page.inner_text("body")
    for text in ("mcp-gateway", "mcp-adapter", *SPAN_NAMES):
        assert text in shown, text
    assert trace_id[:7] in shown  # the page's header names the trace
    assert argument not in shown

    # The gateway's server span opened: its MCP attributes, as an operator reads them.
    await page.locator(".span-name", has_text="tools/call echo").first.click()  # the first row: the gateway's
    await page.locator(".AccordianKeyValues--summaryLabel", has_text="mcp.gateway.tenant").first.wait_for()
    await page.locator(".AccordianKeyValues--header", has_text="Tags").first.click()  # every attribute, one a row
    details = await page.inner_text("body")
    for attribute in ("mcp.method.name", "gen_ai.tool.name", "mcp.gateway.tenant", "mcp.gateway.upstream"):
        assert attribute in details, attribute
    assert "acme-dev" in details
    assert argument not in details and auth["Authorization"].removeprefix("Bearer ") not in details

    shots = ARTIFACTS / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    png = shots / "jaeger-ui-trace.png"
    # Down to the trace's last row, not the empty page below it.
    bottom = await page.evaluate(
        "Math.max(...[...document.querySelectorAll('.span-row')].map(r => r.getBoundingClientRect().bottom))"
    )
    await page.screenshot(path=str(png), clip={"x": 0, "y": 0, "width": 1280, "height": bottom + 8}, full_page=True)
    docs = os.environ.get("MCP_DOCS_TRACE_PNG")
    if docs:
        shutil.copyfile(png, docs)
