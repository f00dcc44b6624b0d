"""Drive MCP `tools/call` load with wrk and read back latency and throughput.

A 2026-07-28 request is one self-contained POST, so wrk (C, epoll) can replay
it at a rate no Python client reaches on two cores. Its ceiling is measured
against a trivial ASGI app in the same run (see `ceiling_app`).

wrk sends the next call the moment an answer arrives, so whatever a server does after
answering still delays the next call. An agent thinks between calls: `run_paced` makes
one call at a time with a pause between them, and times each one.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

MODERN = "2026-07-28"
LEGACY = "2025-11-25"


@dataclass(frozen=True)
class LoadResult:
    concurrency: int
    p50_ms: float
    p99_ms: float
    calls_per_s: float
    errors: int
    calls: int = 0  # answered in all (wrk's "requests in")

    def as_dict(self) -> dict[str, float | int]:
        return {
            "concurrency": self.concurrency,
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "calls_per_s": round(self.calls_per_s, 1),
            "errors": self.errors,
        }


def tools_call_body(tool: str, arguments: dict[str, object], era: str = MODERN) -> str:
    params: dict[str, object] = {"name": tool, "arguments": arguments}
    if era == MODERN:
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
        }
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params})


def open_session(
    url: str, headers: dict[str, str] | None = None, capabilities: dict[str, object] | None = None
) -> dict[str, str]:
    """A handshake-era session (`initialize`, then `notifications/initialized`), as a client declaring
    `capabilities` (none by default) opens it; returns the headers its calls carry."""
    base = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream", **(headers or {})}
    declared = capabilities or {}
    params = {"protocolVersion": LEGACY, "capabilities": declared, "clientInfo": {"name": "bench", "version": "1"}}
    with httpx.Client(timeout=30) as http:
        init = http.post(url, json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}, headers=base)
        init.raise_for_status()
        session = {**base, "MCP-Protocol-Version": LEGACY}
        if sid := init.headers.get("mcp-session-id"):
            session["Mcp-Session-Id"] = sid
        http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
    return session


def _lua_script(body: str, headers: dict[str, str]) -> str:
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    # Count non-2xx answers and JSON-RPC errors as failures, not as fast successes.
    lines += [
        "errors = 0",
        "response = function(status, headers, body)",
        "  if status ~= 200 or string.find(body, '\"error\"', 1, true) then errors = errors + 1 end",
        "end",
        "done = function(summary, latency, requests)",
        '  io.write(string.format("ERRORS %d\\n", summary.errors.status + summary.errors.timeout + errors))',
        "end",
    ]
    return "\n".join(lines) + "\n"


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _call_headers(tool: str, headers: dict[str, str] | None, era: str) -> dict[str, str]:
    all_headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if era == MODERN:
        all_headers |= {"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": tool}
    return all_headers | (headers or {})


def call_once(url: str, *, tool: str = "echo", headers: dict[str, str] | None = None, era: str = MODERN) -> None:
    """One call, waited for: the first may start an upstream session (a stdio child), which no point should time."""
    body = tools_call_body(tool, {"text": "hello"}, era)
    httpx.post(url, content=body, headers=_call_headers(tool, headers, era), timeout=120).raise_for_status()


def run_wrk(
    url: str,
    *,
    tool: str = "echo",
    arguments: dict[str, object] | None = None,
    headers: dict[str, str] | None = None,
    concurrency: int = 1,
    seconds: int = 5,
    era: str = MODERN,
    timeout: int = 2,
) -> LoadResult:
    """wrk replaying one `tools/call`; for the handshake era, `headers` carry the session (`open_session`).

    A call that takes longer than `timeout` seconds is counted as an error (and in no latency).
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is missing: `apt-get install wrk` (make bench does it)")
    all_headers = _call_headers(tool, headers, era)
    body = tools_call_body(tool, arguments or {"text": "hello"}, era)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_lua_script(body, all_headers))
    threads = min(concurrency, 2)
    cmd = [wrk, f"-t{threads}", f"-c{concurrency}", f"-d{seconds}s", f"--timeout={timeout}s", "--latency"]
    out = subprocess.run(
        [*cmd, "-s", script.name, url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + timeout + 30,
    ).stdout
    Path(script.name).unlink()
    percentiles = dict(re.findall(r"^\s+(50|99)(?:\.000)?%\s+(\S+)", out, re.MULTILINE))
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"ERRORS (\d+)", out)
    calls = re.search(r"^\s*(\d+) requests in", out, re.MULTILINE)
    if not (percentiles.get("50") and percentiles.get("99") and rate):
        raise RuntimeError(f"could not read wrk output:\n{out}")
    return LoadResult(
        concurrency=concurrency,
        p50_ms=_ms(percentiles["50"]),
        p99_ms=_ms(percentiles["99"]),
        calls_per_s=float(rate.group(1)),
        errors=int(errors.group(1)) if errors else 0,
        calls=int(calls.group(1)) if calls else 0,
    )


def run_paced(
    url: str,
    *,
    tool: str = "echo",
    headers: dict[str, str] | None = None,
    era: str = MODERN,
    calls: int = 300,
    think_seconds: float = 0.002,
) -> LoadResult:
    """`calls` calls one at a time on one kept-alive connection, `think_seconds` apart; p50/p99 of each call.

    The client is Python, so its own time is in every figure: compare targets measured alike.
    """
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    body = tools_call_body(tool, {"text": "hello"}, era)
    all_headers = _call_headers(tool, headers, era)
    taken: list[float] = []
    errors = 0
    try:
        for _ in range(calls):
            started = time.perf_counter()
            connection.request("POST", parts.path, body=body, headers=all_headers)
            answer = connection.getresponse()
            content = answer.read()
            taken.append(time.perf_counter() - started)
            errors += answer.status != 200 or b'"error"' in content
            time.sleep(think_seconds)
    finally:
        connection.close()
    ordered = sorted(taken)
    return LoadResult(
        concurrency=1,
        p50_ms=1000 * statistics.median(ordered),
        p99_ms=1000 * ordered[int(0.99 * (len(ordered) - 1))],
        calls_per_s=len(taken) / (sum(taken) + think_seconds * len(taken)),
        errors=errors,
        calls=len(taken),
    )
