"""The pieces of `make bench-peers` that need no peer installed: its pin, its figures and CPU accounting.

The benchmark itself (ContextForge in its own venv, wrk) is not part of `make test`.
"""

from __future__ import annotations

import subprocess
import sys
import time

from bench.peers import contextforge_env, pinned, report, summarise
from bench.stack import cpu_seconds


def _points(p50: float, calls: float, cpu: dict[str, float]) -> list[dict[str, object]]:
    return [
        {
            "concurrency": c,
            "p50_ms": p50 * c,
            "p99_ms": p50 * c * 2,
            "calls_per_s": calls,
            "errors": 0,
            "cpu_ms_per_call": cpu,
        }
        for c in (1, 16, 64)
    ]


def test_the_peer_is_pinned_and_configured_for_loopback(tmp_path: object) -> None:
    assert pinned("CONTEXTFORGE_VERSION").count(".") == 2
    env = contextforge_env("s" * 43, "pw", tmp_path)  # type: ignore[arg-type]
    assert env["RATE_LIMITING_ENABLED"] == "false" and env["AUTH_REQUIRED"] == "true"
    assert env["DATABASE_URL"].startswith("sqlite:///")


def test_summary_compares_each_target_with_direct_in_its_own_era() -> None:
    targets = {
        "direct 2025-11-25": _points(0.5, 1000.0, {"upstream": 0.4}),
        "mcp-gateway 2025-11-25": _points(1.25, 600.0, {"upstream": 0.4, "adapter": 0.2, "gateway": 0.3}),
        "contextforge 2025-11-25": _points(10.5, 50.0, {"upstream": 0.6, "peer": 18.0}),
    }
    rows = {row["target"]: row for row in summarise(targets)}
    assert rows["mcp-gateway 2025-11-25"]["added_p50_c1_ms"] == 0.75
    assert rows["mcp-gateway 2025-11-25"]["kept_c64"] == 0.6
    assert rows["contextforge 2025-11-25"]["kept_c16"] == 0.05
    assert rows["contextforge 2025-11-25"]["cpu_ms_per_call_c64"] == 18.6
    assert "added_p50_c1_ms" not in rows["direct 2025-11-25"]
    data = {"peers": {"contextforge": {"version": "1.0.7", "modern_refused": "HTTP 400"}}}
    printed = report({**data, "seconds_per_point": 3, "repeat": 3, "summary": list(rows.values())})
    assert "contextforge 1.0.7: 2026-07-28 refused (HTTP 400)" in printed
    assert "+10.0" in printed and "5 %" in printed


def test_cpu_of_a_process_can_include_its_children() -> None:
    burn = "import sys, time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass\nsys.stdin.read()"
    parent_code = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}])"
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while cpu_seconds(parent.pid, children=True) - cpu_seconds(parent.pid) < 0.4:
            assert time.monotonic() < deadline, "the child's CPU never showed up"
            time.sleep(0.05)
        assert cpu_seconds(parent.pid) < 0.4  # the parent itself only waits
    finally:
        parent.kill()
        parent.wait()
