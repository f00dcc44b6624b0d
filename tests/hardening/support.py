"""Helpers for the hardening tests: process memory, metrics, audit hashes and a bounded load driver."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from mcp_gateway.audit import arguments_key, render_arguments

from tests.gateway.support import MODERN, PEPPER, modern_call, modern_headers
from tests.support.processes import ARTIFACTS


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of a process (KiB), read from /proc: now (VmRSS) or its peak so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def argument_hash(arguments: dict[str, Any]) -> str:
    """The audit log's `hash` form of tool arguments, keyed from the test gateways' pepper."""
    return str(render_arguments(arguments, "hash", arguments_key(PEPPER.encode())))


def via_port(dsn: str, port: int) -> str:
    """The same DSN, reached through another loopback port (a TcpProxy in front of PostgreSQL)."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{port}"))


def pg_port(dsn: str) -> int:
    return urlsplit(dsn).port or 5432


@dataclass
class Outcome:
    status: int
    latency: float
    arguments: dict[str, Any]
    body: dict[str, Any] | None
    error: str | None = None


@dataclass
class LoadResult:
    outcomes: list[Outcome] = field(default_factory=list)

    def by_status(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for o in self.outcomes:
            counts[o.status] = counts.get(o.status, 0) + 1
        return counts

    def completed(self) -> list[Outcome]:
        """Calls that reached the tool and got its result."""
        return [o for o in self.outcomes if o.status == 200 and o.body is not None and "result" in o.body]

    def p99(self) -> float:
        latencies = sorted(o.latency for o in self.outcomes)
        return latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0


async def stateless_call(http: httpx.AsyncClient, url: str, text: str, rid: int) -> Outcome:
    """One 2026-07-28 tools/call of `echo`; transport failures become status 0."""
    arguments = {"text": text}
    started = time.monotonic()
    try:
        response = await http.post(
            url, json=modern_call("echo", arguments, rid), headers=modern_headers("tools/call", "echo")
        )
    except httpx.HTTPError as exc:
        return Outcome(0, time.monotonic() - started, arguments, None, repr(exc))
    try:
        body = response.json()
    except ValueError:
        body = None
    return Outcome(response.status_code, time.monotonic() - started, arguments, body)


async def drive(url: str, *, workers: int, seconds: float, max_calls: int, tag: str) -> LoadResult:
    """`workers` concurrent loops of stateless calls until `seconds` pass or `max_calls` are sent."""
    result = LoadResult()
    deadline = time.monotonic() + seconds
    sent = 0

    async def worker(http: httpx.AsyncClient, w: int) -> None:
        nonlocal sent
        while time.monotonic() < deadline and sent < max_calls:
            sent += 1
            result.outcomes.append(await stateless_call(http, url, f"{tag}-{w}-{sent}", sent))

    limits = httpx.Limits(max_connections=workers)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        await asyncio.gather(*(worker(http, w) for w in range(workers)))
    return result


def write_report(name: str, figures: dict[str, Any]) -> Path:
    """Figures for the lead to quote: printed and kept under tests/artifacts/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2, sort_keys=True))
    print(f"\n{name}: {json.dumps(figures, sort_keys=True)}")
    return path


__all__ = ["MODERN"]
