"""Handshake-era sessions: memory per 1,000 idle sessions and time to initialize one.

Each session is a real `initialize` + `notifications/initialized` exchange
(2025-11-25), then left idle. The gateway's sessions are signed tokens, so
its memory should not grow with them; the adapter and a plain SDK server keep
per-session state and are measured beside it for comparison.
"""

from __future__ import annotations

from typing import Any

import httpx

from bench.client import LEGACY, decode, headers, timed, timings_ms
from bench.overhead import echo_adapter_config
from bench.stack import Stack, rss_mb

SESSIONS = 1000

_INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}},
}
_INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def _open_session(client: httpx.Client, url: str) -> str:
    response = client.post(url, json=_INIT, headers=headers("initialize", version=LEGACY))
    message = decode(response)
    session = response.headers.get("mcp-session-id")
    if "result" not in message or not session:
        raise RuntimeError(f"initialize at {url} failed: {response.status_code} {response.text[:300]}")
    follow = headers("", version=LEGACY, extra={"Mcp-Session-Id": session, "MCP-Protocol-Version": LEGACY})
    client.post(url, json=_INITIALIZED, headers=follow).raise_for_status()
    return session


def _measure(url: str, pid: int) -> dict[str, Any]:
    with httpx.Client(timeout=30) as client:
        _open_session(client, url)  # warm-up: first-use imports and caches are not per-session cost
        before = rss_mb(pid)
        times = [timed(_open_session, client, url)[0] for _ in range(SESSIONS)]
        after = rss_mb(pid)
    return {
        "sessions": SESSIONS,
        "rss_before_mb": round(before, 1),
        "rss_after_mb": round(after, 1),
        "rss_per_1000_sessions_mb": round((after - before) * 1000 / SESSIONS, 1),
        "initialize": timings_ms(times),
    }


def run() -> dict[str, Any]:
    with Stack("sessions") as stack:
        echo_base, echo_pid = stack.python_module("echo", "bench.echo_server", ready_path="/mcp")
        adapter_url, adapter_pid = stack.adapter("echo", echo_adapter_config(f"{echo_base}/mcp"))
        routing = {
            "tenants": [{"id": "bench"}],
            "profiles": [
                {
                    "id": "bench",
                    "tenant": "bench",
                    "upstreams": [{"name": "echo", "url": adapter_url, "prefix": "never"}],
                    "auth": {"mode": "none"},
                }
            ],
        }
        gateway = stack.gateway("sessions", routing)
        return {
            "gateway": _measure(gateway.url("bench"), gateway.pid),
            "adapter_direct": _measure(adapter_url, adapter_pid),
            "sdk_server_direct": _measure(f"{echo_base}/mcp", echo_pid),
        }
