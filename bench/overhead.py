"""Per-call overhead: `tools/call echo` through each layer, at several concurrencies.

Targets, all on this machine in one run: the load generator's ceiling (a bare
ASGI app), the echo upstream directly, the adapter in front of it, the adapter
serving it as a stdio child (CPU of both counted together), and the gateway in
front of the adapter with API-key auth, a tool policy, rate limits and quotas
on - once with in-process state, once backed by PostgreSQL; each in both
protocol eras (2026-07-28 stateless calls, and 2025-11-25 calls in one
session opened by a client that declares no capabilities), and direct and
gateway again with the upstream answering as JSON instead of SSE; and, handshake
era only, the in-process gateway serving a session that declared `roots` (as most
clients do): toward an upstream not told the client's era its calls keep the SDK path
for its back channel (`+roots`); toward one that is (`sendCallerHeader`, an adapter
trusting it: `+roots_bridged`) the gateway relays them and the adapter serves them on
its handshake-era upstream session (handshake_relay.py).

A handshake-era target is named with its era (`gateway_memory@2025-11-25`), a
2026-07-28 one without, so every row of the printed tables starts with one
word and the concurrency. Besides latency, throughput and CPU per call of each
process, each point counts the TCP connections each hop behind the front
opened per 1,000 calls (gateway → adapter from the adapter's
`mcp_adapter_http_connections_total`, adapter → upstream from the echo server's
own count): connection churn shows there. wrk drops its in-flight calls when a
run ends, and each hop cancels such a call by closing its connection (the HTTP
way), so up to `c` connections per run end are replacements, not churn: the
figure shown is beyond those (the raw count is kept in the JSON).
"""

from __future__ import annotations

import re
import statistics
import sys
from collections.abc import Callable
from typing import Any

import httpx

from bench.loadgen import LEGACY, MODERN, LoadResult, call_once, open_session, run_wrk
from bench.stack import UNREACHED_QUOTA, UNREACHED_RATE, Stack, ThrowawayDatabase, cpu_seconds, rss_mb

CONCURRENCY = (1, 16, 64)
WARMUP_SECONDS = 1
# The connections a process has accepted so far, less the ones its own reads opened.
ConnectionCount = Callable[[], int]


def adapter_connections(mcp_url: str) -> ConnectionCount:
    """An adapter's accepted connections, from its metrics."""
    return _counted_reads(mcp_url.rsplit("/mcp", 1)[0] + "/metrics", r"^mcp_adapter_http_connections_total (\S+)$")


def echo_connections(base: str) -> ConnectionCount:
    """The echo upstream's accepted connections (`bench/echo_server.py`)."""
    return _counted_reads(f"{base}/connections", r"^(\d+)$")


def _counted_reads(url: str, pattern: str) -> ConnectionCount:
    reads = 0

    def read() -> int:
        nonlocal reads
        reads += 1  # each read comes on a connection of its own, counted before it is answered
        text = httpx.get(url, timeout=10).text
        found = re.search(pattern, text, re.MULTILINE)
        if found is None:
            raise RuntimeError(f"no connection count at {url}")
        return int(float(found.group(1))) - reads

    return read


def era_target(name: str, era: str) -> str:
    """`gateway_memory` (2026-07-28) or `gateway_memory@2025-11-25`: one word, as the row parsers read it."""
    return name if era == MODERN else f"{name}@{era}"


def echo_adapter_config(upstream_url: str) -> dict[str, Any]:
    return {
        # Trusting the gateway's caller and era headers, as the operator deploys adapters (only the
        # `bridged` profile sends them).
        "server": {"name": "bench-adapter", "trustCallerHeader": True},
        "sources": [{"name": "echo", "type": "mcp", "url": upstream_url, "prefixPolicy": "never"}],
    }


def echo_stdio_adapter_config() -> dict[str, Any]:
    """The same echo server, as the adapter's stdio child."""
    echo = {"name": "echo", "type": "stdio", "command": sys.executable, "args": ["-m", "bench.echo_server", "stdio"]}
    return {"server": {"name": "bench-adapter"}, "sources": [{**echo, "prefixPolicy": "never"}]}


def limited_routing(adapter_url: str) -> dict[str, Any]:
    """One profile with every per-call check on: API key, policy, three buckets, two quotas."""
    return {
        "tenants": [{"id": "bench", "limits": {"rate": UNREACHED_RATE, "quota": UNREACHED_QUOTA}}],
        "profiles": [
            {
                "id": "bench",
                "tenant": "bench",
                "upstreams": [{"name": "echo", "url": adapter_url, "prefix": "never"}],
                "auth": {"mode": "apiKey"},
                "policy": {"tools": {"allow": ["echo", "search_*"], "deny": ["*_admin"]}},
                "limits": {"rate": UNREACHED_RATE, "perKeyRate": UNREACHED_RATE, "quota": UNREACHED_QUOTA},
            }
        ],
    }


def _median(results: list[LoadResult]) -> LoadResult:
    return LoadResult(
        concurrency=results[0].concurrency,
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        calls_per_s=statistics.median(r.calls_per_s for r in results),
        errors=sum(r.errors for r in results),
    )


def measure(
    url: str,
    headers: dict[str, str] | None,
    seconds: int,
    repeat: int,
    concurrency: tuple[int, ...] = CONCURRENCY,
    pids: dict[str, int] | None = None,
    era: str = MODERN,
    tool: str = "echo",
    wrk_timeout: int = 2,
    hops: dict[str, ConnectionCount] | None = None,
) -> list[dict[str, Any]]:
    """wrk at each concurrency; with `pids`, also the CPU each process spent per call; with `hops`,
    the new connections each hop opened per 1,000 calls (over all runs of the point), beyond those
    replacing the calls wrk abandoned at each run's end (`_raw`: all of them).

    CPU per call does not depend on what else the machine runs, unlike latency and
    throughput on a shared two-core box, so it is the steadiest before/after figure.
    """
    call_once(url, tool=tool, headers=headers, era=era)

    def wrk(conc: int, secs: int) -> LoadResult:
        return run_wrk(url, tool=tool, headers=headers, concurrency=conc, seconds=secs, era=era, timeout=wrk_timeout)

    wrk(16, WARMUP_SECONDS)  # connections and caches warm
    points = []
    for c in concurrency:
        if hops:  # each pool grown to this point's concurrency first: its growth is not churn
            wrk(c, WARMUP_SECONDS)
        runs, cpu = [], dict.fromkeys(pids or {}, 0.0)
        opened = {hop: -count() for hop, count in (hops or {}).items()}
        for _ in range(repeat):
            before = {name: _cpu(name, pid) for name, pid in (pids or {}).items()}
            runs.append(wrk(c, seconds))
            calls = max(1.0, runs[-1].calls_per_s * seconds)
            for name, pid in (pids or {}).items():
                cpu[name] += (_cpu(name, pid) - before[name]) * 1000 / calls / repeat
        point: dict[str, Any] = dict(_median(runs).as_dict())
        if pids:
            point["cpu_ms_per_call"] = {name: round(ms, 3) for name, ms in cpu.items()}
        if hops:
            answered = max(1, sum(r.calls for r in runs))
            raw = {hop: opened[hop] + count() for hop, count in hops.items()}
            # wrk drops the calls in flight as each run ends: each hop cancels its own (closes the connection,
            # the HTTP way to cancel) and the next run opens one anew, up to `c` per run end counted here.
            abandoned = c * repeat
            point["new_connections_per_1000_calls"] = {
                hop: round(max(0, n - abandoned) * 1000 / answered, 2) for hop, n in raw.items()
            }
            point["new_connections_per_1000_calls_raw"] = {hop: round(n * 1000 / answered, 2) for hop, n in raw.items()}
        points.append(point)
    return points


def _cpu(name: str, pid: int) -> float:
    """A process's CPU seconds so far; a name ending in `+child` counts its child processes too."""
    return cpu_seconds(pid, children=name.endswith("+child"))


def _ratios(gateway: list[dict[str, Any]], direct: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for g, d in zip(gateway, direct, strict=True):
        out.append(
            {
                "concurrency": g["concurrency"],
                "added_p50_ms": round(g["p50_ms"] - d["p50_ms"], 3),
                "p50_ratio": round(g["p50_ms"] / d["p50_ms"], 2) if d["p50_ms"] else None,
                "throughput_ratio": round(g["calls_per_s"] / d["calls_per_s"], 3) if d["calls_per_s"] else None,
            }
        )
    return out


ERAS = (MODERN, LEGACY)
ROOTS = "gateway_memory+roots"  # a handshake session declaring roots: the SDK path (its back channel)
BRIDGED = "gateway_memory+roots_bridged"  # the same toward an upstream told the client's era: relayed
ROOTS_CAPABILITIES: dict[str, object] = {"roots": {"listChanged": True}}


def with_bridged(routing: dict[str, Any]) -> dict[str, Any]:
    """The routing plus profile `bridged`: the same upstream, told a handshake client's era (`sendCallerHeader`)."""
    bridged = {**routing["profiles"][0], "id": "bridged"}
    bridged["upstreams"] = [{**u, "sendCallerHeader": True} for u in bridged["upstreams"]]
    return {**routing, "profiles": [*routing["profiles"], bridged]}


def _session_headers(url: str, era: str, headers: dict[str, str] | None) -> dict[str, str] | None:
    """What each call carries: for the handshake era, the session a capability-less client opens."""
    return open_session(url, headers) if era == LEGACY else headers


def run(seconds: int, repeat: int) -> dict[str, Any]:
    """Both eras, side by side in one run; the SDK upstream answering as SSE (its default) and as JSON."""
    with Stack("overhead") as stack, ThrowawayDatabase() as db:
        ceiling_base, _ = stack.python_module("ceiling", "bench.ceiling_app")
        echo_base, echo_pid = stack.python_module("echo", "bench.echo_server", ready_path="/mcp")
        json_base, json_pid = stack.python_module("echo-json", "bench.echo_server", "--json", ready_path="/mcp")
        adapter_url, adapter_pid = stack.adapter("echo", echo_adapter_config(f"{echo_base}/mcp"))
        stdio_url, stdio_pid = stack.adapter("echo-stdio", echo_stdio_adapter_config())
        json_adapter_url, json_adapter_pid = stack.adapter("echo-json", echo_adapter_config(f"{json_base}/mcp"))
        routing = limited_routing(adapter_url)
        memory_gw = stack.gateway("memory", with_bridged(routing))
        pg_gw = stack.gateway("postgres", routing, dsn=db.dsn)
        json_gw = stack.gateway("memory-json", limited_routing(json_adapter_url))
        memory_key = {"Authorization": f"Bearer {memory_gw.mint_key('bench', ['bench', 'bridged'])}"}
        pg_key = {"Authorization": f"Bearer {pg_gw.mint_key('bench', ['bench'])}"}
        json_key = {"Authorization": f"Bearer {json_gw.mint_key('bench', ['bench'])}"}

        echo, adapter = {"upstream": echo_pid}, {"upstream": echo_pid, "adapter": adapter_pid}
        json_adapter = {"upstream": json_pid, "adapter": json_adapter_pid}
        # The hops behind the front, by the process that accepts their connections.
        to_echo = {"adapter→upstream": echo_connections(echo_base)}
        via_adapter = {"gateway→adapter": adapter_connections(adapter_url), **to_echo}
        via_json_adapter = {
            "gateway→adapter": adapter_connections(json_adapter_url),
            "adapter→upstream": echo_connections(json_base),
        }
        # name -> (url, auth headers, pids, hops); "+json": the same path to the JSON-answering upstream.
        paths: dict[str, tuple[str, dict[str, str] | None, dict[str, int], dict[str, ConnectionCount]]] = {
            "direct": (f"{echo_base}/mcp", None, echo, {}),
            "adapter": (adapter_url, None, adapter, to_echo),
            "adapter_stdio": (stdio_url, None, {"adapter+child": stdio_pid}, {}),
            "gateway_memory": (memory_gw.url("bench"), memory_key, {**adapter, "gateway": memory_gw.pid}, via_adapter),
            "gateway_postgres": (pg_gw.url("bench"), pg_key, {**adapter, "gateway": pg_gw.pid}, via_adapter),
            "direct+json": (f"{json_base}/mcp", None, {"upstream": json_pid}, {}),
            "gateway_memory+json": (
                json_gw.url("bench"),
                json_key,
                {**json_adapter, "gateway": json_gw.pid},
                via_json_adapter,
            ),
        }
        targets: dict[str, list[dict[str, Any]]] = {}
        targets["loadgen_ceiling"] = measure(f"{ceiling_base}/", None, seconds, repeat)
        for era in ERAS:
            for name, (url, auth, pids, hops) in paths.items():
                headers = _session_headers(url, era, auth)
                targets[era_target(name, era)] = measure(url, headers, seconds, repeat, pids=pids, era=era, hops=hops)
        # Most handshake-era clients declare roots (or sampling, elicitation): the SDK path, unless the
        # upstream is told the client's era (then relayed, the adapter serving it on a handshake session).
        url, auth, pids, hops = paths["gateway_memory"]
        roots = open_session(url, auth, capabilities=ROOTS_CAPABILITIES)
        targets[era_target(ROOTS, LEGACY)] = measure(url, roots, seconds, repeat, pids=pids, era=LEGACY, hops=hops)
        bridged_url = memory_gw.url("bridged")
        bridged = open_session(bridged_url, auth, capabilities=ROOTS_CAPABILITIES)
        targets[era_target(BRIDGED, LEGACY)] = measure(
            bridged_url, bridged, seconds, repeat, pids=pids, era=LEGACY, hops=hops
        )
        rss = {
            "echo_upstream": rss_mb(echo_pid),
            "adapter": rss_mb(adapter_pid),
            "gateway_memory": rss_mb(memory_gw.pid),
            "gateway_postgres": rss_mb(pg_gw.pid),
        }
    ratios = {}
    for era in ERAS:
        for name in [*paths, ROOTS, BRIDGED] if era == LEGACY else paths:
            if not name.startswith("direct"):
                direct = era_target("direct+json" if name.endswith("+json") else "direct", era)
                ratios[era_target(name, era)] = _ratios(targets[era_target(name, era)], targets[direct])
    return {
        "seconds_per_point": seconds,
        "repeat": repeat,
        "targets": targets,
        "ratios_vs_direct": ratios,
        "rss_mb_after_load": {k: round(v, 1) for k, v in rss.items()},
    }
