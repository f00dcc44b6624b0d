"""`make bench-peers`: other MCP gateways measured beside ours, same upstream, same load, same run.

Peers (each installed from its registry into its own venv under ~/.cache/mcp-gateway/peers by
scripts/install-peers.sh, never into our lock):

- IBM ContextForge (`mcp-contextforge-gateway`, version pinned in scripts/versions.env): one
  uvicorn worker, SQLite, JWT auth (a token minted with its own tool), its rate limiter off,
  in-memory cache, log level ERROR (its default), the echo upstream registered as a
  streamable-HTTP gateway and exposed through one virtual server.

Ours: gateway (in-process state, API key, tool policy, rate limits and quotas on) → adapter →
the same upstream (`bench/echo_server.py`, answering as SSE). Each target is measured in the
eras it accepts (a peer refusing 2026-07-28 is reported as such) with wrk (`loadgen.py`):
added p50 and p99 at concurrency 1, throughput kept at 16 and 64, CPU ms per call of each process.

`python -m bench.peers [--seconds 3] [--repeat 3]`; results in bench/results/peers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from bench import machine, overhead
from bench.loadgen import LEGACY, MODERN, open_session, tools_call_body
from bench.stack import HOST, ROOT, Stack
from tests.support.processes import free_port

PEERS_DIR = Path.home() / ".cache" / "mcp-gateway" / "peers"
RESULTS = Path(__file__).resolve().parent / "results"
CONCURRENCY = (1, 16, 64)
WRK_TIMEOUT = 30


def pinned(name: str) -> str:
    """A version from scripts/versions.env."""
    for line in (ROOT / "scripts" / "versions.env").read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1].strip()
    raise KeyError(f"{name} is not pinned in scripts/versions.env")


def contextforge_home() -> Path:
    return PEERS_DIR / f"contextforge-{pinned('CONTEXTFORGE_VERSION')}"


def contextforge_env(secret: str, password: str, workdir: Path) -> dict[str, str]:
    """ContextForge's settings for the run (environment variables, as its docs configure it)."""
    return {
        "HOME": str(workdir),
        "DATABASE_URL": f"sqlite:///{workdir / 'contextforge.db'}",
        "JWT_SECRET_KEY": secret,
        "AUTH_REQUIRED": "true",
        "PLATFORM_ADMIN_EMAIL": "admin@example.com",
        "PLATFORM_ADMIN_PASSWORD": password,
        "BASIC_AUTH_PASSWORD": password,
        "MCPGATEWAY_UI_ENABLED": "false",
        "MCPGATEWAY_ADMIN_API_ENABLED": "false",
        "RATE_LIMITING_ENABLED": "false",
        "SSRF_ALLOW_LOCALHOST": "true",  # the upstream is on loopback
        "CACHE_TYPE": "memory",
        "LOG_LEVEL": "ERROR",
        "DEV_MODE": "true",  # SQLite is refused otherwise
        "PYTHONPATH": "",
    }


class ContextForge:
    """One ContextForge process in `stack`, serving `upstream` through a virtual server."""

    def __init__(self, stack: Stack, upstream: str) -> None:
        home = contextforge_home()
        binary = home / "bin" / "mcpgateway"
        if not binary.exists():
            raise RuntimeError(f"ContextForge is not installed in {home}: run scripts/install-peers.sh")
        self.version = pinned("CONTEXTFORGE_VERSION")
        self._python = str(home / "bin" / "python")
        self._secret = secrets.token_urlsafe(32)
        self._env = contextforge_env(self._secret, "Aa1!" + secrets.token_urlsafe(16), stack.workdir)
        port = free_port()
        self.base = f"http://{HOST}:{port}"
        cmd = [str(binary), "--host", HOST, "--port", str(port), "--workers", "1"]
        self.pid = stack.start("contextforge", cmd, "/health", port, self._env, timeout=300)
        self.token = self._mint_token()
        self.auth = {"Authorization": f"Bearer {self.token}"}
        self.tool, self.url = self._register(upstream)

    def _mint_token(self) -> str:
        """An admin JWT from ContextForge's own tool (its claims: jti, exp, audience, issuer)."""
        cmd = [self._python, "-m", "mcpgateway.utils.create_jwt_token", "-u", "admin@example.com"]
        cmd += ["--admin", "--exp", "120", "--secret", self._secret]
        env = {**os.environ, **self._env}
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120, env=env).stdout
        return out.strip().splitlines()[-1]

    def _register(self, upstream: str) -> tuple[str, str]:
        """Register the upstream, expose its echo tool through a virtual server; (tool name, MCP URL)."""
        with httpx.Client(base_url=self.base, headers=self.auth, timeout=120) as http:
            gateway = {"name": "echo", "url": upstream, "transport": "STREAMABLEHTTP"}
            http.post("/gateways", json=gateway).raise_for_status()
            tools = http.get("/tools").json()
            listed = tools["items"] if isinstance(tools, dict) else tools
            echo = next(t for t in listed if str(t.get("originalName", t.get("name"))).endswith("echo"))
            server = {"server": {"name": "bench", "associated_tools": [echo["id"]]}}
            created = http.post("/servers", json=server)
            if created.status_code == 422:  # older releases take the fields unwrapped
                created = http.post("/servers", json=server["server"])
            created.raise_for_status()
            return str(echo["name"]), f"{self.base}/servers/{created.json()['id']}/mcp"

    def modern_refusal(self) -> str | None:
        """Why a 2026-07-28 call is refused (None: it is served)."""
        headers = {
            **self.auth,
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": MODERN,
            "Mcp-Method": "tools/call",
            "Mcp-Name": self.tool,
        }
        body = tools_call_body(self.tool, {"text": "hello"}, MODERN)
        answer = httpx.post(self.url, content=body, headers=headers, timeout=60)
        if answer.status_code == 200 and '"error"' not in answer.text:
            return None
        return f"HTTP {answer.status_code}: {answer.text[:160]}"


def _cpu_total(point: dict[str, Any]) -> float:
    return round(sum(point.get("cpu_ms_per_call", {}).values()), 3)


def summarise(targets: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per target: added p50/p99 at c=1 and throughput kept at c=16/64 against direct in its era."""
    rows = []
    for name, points in targets.items():
        era = name.rsplit(" ", 1)[1]
        direct = targets[f"direct {era}"]
        by_c = {p["concurrency"]: p for p in points}
        base = {p["concurrency"]: p for p in direct}
        row: dict[str, Any] = {"target": name, "p50_c1_ms": by_c[1]["p50_ms"], "p99_c1_ms": by_c[1]["p99_ms"]}
        if not name.startswith("direct") and by_c[1]["calls_per_s"] > 0:  # else no call ended: no latency
            row["added_p50_c1_ms"] = round(by_c[1]["p50_ms"] - base[1]["p50_ms"], 3)
        if not name.startswith("direct"):
            for c in (16, 64):
                row[f"kept_c{c}"] = round(by_c[c]["calls_per_s"] / base[c]["calls_per_s"], 3)
        row["calls_per_s_c64"] = by_c[64]["calls_per_s"]
        row["errors"] = sum(p["errors"] for p in points)
        row["cpu_ms_per_call_c64"] = _cpu_total(by_c[64])
        row["cpu_split_c64"] = by_c[64].get("cpu_ms_per_call", {})
        rows.append(row)
    return rows


def run(seconds: int, repeat: int, concurrency: tuple[int, ...] = CONCURRENCY) -> dict[str, Any]:
    with Stack("peers") as stack:
        echo_base, echo_pid = stack.python_module("echo", "bench.echo_server", ready_path="/mcp")
        upstream = f"{echo_base}/mcp"
        adapter_url, adapter_pid = stack.adapter("echo", overhead.echo_adapter_config(upstream))
        ours = stack.gateway("memory", overhead.limited_routing(adapter_url))
        key = {"Authorization": f"Bearer {ours.mint_key('bench', ['bench'])}"}
        peer = ContextForge(stack, upstream)
        refusal = peer.modern_refusal()

        echo = {"upstream": echo_pid}
        paths: list[tuple[str, str, str, dict[str, str] | None, dict[str, int], str]] = []
        for era in (MODERN, LEGACY):
            paths.append((f"direct {era}", era, upstream, None, echo, "echo"))
            pids = {**echo, "adapter": adapter_pid, "gateway": ours.pid}
            paths.append((f"mcp-gateway {era}", era, ours.url("bench"), key, pids, "echo"))
            if era == LEGACY or refusal is None:
                paths.append((f"contextforge {era}", era, peer.url, peer.auth, {**echo, "peer": peer.pid}, peer.tool))
        targets: dict[str, list[dict[str, Any]]] = {}
        for name, era, url, auth, pids, tool in paths:
            headers = open_session(url, auth) if era == LEGACY else auth
            # A long wrk timeout: a slow peer's calls count as slow, not as dropped.
            targets[name] = overhead.measure(url, headers, seconds, repeat, concurrency, pids, era, tool, WRK_TIMEOUT)
            print(f"  measured {name}", flush=True)
    return {
        "peers": {"contextforge": {"version": peer.version, "modern_refused": refusal}},
        "seconds_per_point": seconds,
        "repeat": repeat,
        "targets": targets,
        "summary": summarise(targets),
    }


def report(data: dict[str, Any]) -> str:
    lines = [f"tools/call echo, {data['seconds_per_point']} s per point, median of {data['repeat']}"]
    for name, peer in data["peers"].items():
        refused = peer["modern_refused"]
        lines.append(f"  {name} {peer['version']}: 2026-07-28 " + (f"refused ({refused})" if refused else "served"))
    header = f"  {'target':<26} {'added p50 c=1':>13} {'p99 c=1':>8} {'kept c=16':>9} {'kept c=64':>9}"
    lines += [header + f" {'calls/s c=64':>12} {'errors':>6}  CPU ms/call c=64", "  " + "-" * 110]
    for row in data["summary"]:
        added = f"({row['p50_c1_ms']})" if row["target"].startswith("direct") else "no call"
        added = f"+{row['added_p50_c1_ms']}" if "added_p50_c1_ms" in row else added
        kept = [f"{row[k] * 100:.0f} %" if k in row else "" for k in ("kept_c16", "kept_c64")]
        split = " + ".join(f"{k} {v:.2f}" for k, v in row["cpu_split_c64"].items())
        lines.append(
            f"  {row['target']:<26} {added:>13} {row['p99_c1_ms']:>8} {kept[0]:>9} {kept[1]:>9}"
            f" {row['calls_per_s_c64']:>12} {row['errors']:>6}  {row['cpu_ms_per_call_c64']:.2f} ({split})"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__)
    parser.add_argument("--seconds", type=int, default=3, help="wrk duration per load point")
    parser.add_argument("--repeat", type=int, default=3, help="runs per load point (the median is reported)")
    parser.add_argument("--out", type=Path, default=RESULTS / "peers.json")
    args = parser.parse_args()
    info = machine.describe()
    print(f"machine: {info['cores']} cores, {info['cpu']}, load average {os.getloadavg()[0]:.1f}", flush=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    data = run(args.seconds, args.repeat)
    print(report(data), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": info, "started": started, **data}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
