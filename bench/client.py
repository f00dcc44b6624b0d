"""A minimal sequential JSON-RPC client over streamable HTTP, timed with perf_counter.

Deliberately thin (httpx, one connection): the figures are the server's, not
an SDK client's bookkeeping.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

import httpx

MODERN = "2026-07-28"
LEGACY = "2025-11-25"
MODERN_META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}


def decode(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC answer, whether sent as JSON or as an SSE stream."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        for line in response.text.splitlines():
            if line.startswith("data:") and line[5:].strip():
                message = json.loads(line[5:])
                if "id" in message:
                    return dict(message)
        raise RuntimeError(f"no JSON-RPC answer in the event stream: {response.text[:300]}")
    return dict(response.json())


def headers(method: str, *, version: str = MODERN, extra: dict[str, str] | None = None) -> dict[str, str]:
    out = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if version == MODERN:
        out |= {"MCP-Protocol-Version": MODERN, "Mcp-Method": method}
    return out | (extra or {})


def call(
    client: httpx.Client, url: str, method: str, params: dict[str, Any], extra: dict[str, str] | None = None
) -> Any:
    """One modern (stateless) request; returns its result or raises on an error."""
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": MODERN_META}}
    named = {"Mcp-Name": params["name"]} if method in ("tools/call", "prompts/get") else {}
    response = client.post(url, json=body, headers=headers(method, extra={**named, **(extra or {})}))
    message = decode(response)
    if "error" in message:
        raise RuntimeError(f"{method} at {url} failed: {message['error']}")
    return message["result"]


def list_all_tools(client: httpx.Client, url: str, extra: dict[str, str] | None = None) -> int:
    """Follow `nextCursor` to the end; return how many tools there are."""
    count, cursor = 0, None
    for _ in range(1000):  # bounded: a broken cursor must not loop forever
        result = call(client, url, "tools/list", {"cursor": cursor} if cursor else {}, extra)
        count += len(result["tools"])
        cursor = result.get("nextCursor")
        if not cursor:
            return count
    raise RuntimeError(f"tools/list at {url} did not end within 1000 pages")


def timings_ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(ordered), 2), "p99_ms": round(p99, 2), "n": len(ordered)}


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn(*args)
    return (time.perf_counter() - start) * 1000, value
