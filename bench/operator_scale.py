"""Operator at scale: N Upstreams + N Profiles against a real API server.

    .venv/bin/python -m bench.operator_scale [--count 200]

Starts etcd + kube-apiserver + kube-controller-manager (tests/support/kube.py),
the adapter stub standing in for adapter Pods (no kubelet here), and the
operator as a real process; creates one Tenant, N Upstreams and N Profiles and
reports how long until every Upstream is Ready (adapter answered, tool count
known), every Profile is Ready (routed) and the routing ConfigMap lists all N
profiles, plus the operator's peak RSS and CPU time. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tests.operator.support import Resources, adapter_stub_command, install_rbac, operator_command
from tests.support.kube import start_control_plane
from tests.support.processes import free_port, start_process

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Sampler(threading.Thread):
    """Peak RSS and CPU seconds of one process, read from /proc."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_rss_mb = 0.0
        self.cpu_seconds = 0.0
        self.stopped = threading.Event()

    def sample(self) -> None:
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
            stat = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return
        rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        self.peak_rss_mb = max(self.peak_rss_mb, rss_kb / 1024)
        self.cpu_seconds = (int(stat[11]) + int(stat[12])) / CLOCK_TICKS  # utime + stime

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            self.sample()


def _ready_count(items: list[dict[str, Any]]) -> int:
    return sum(
        1
        for item in items
        if any(c["type"] == "Ready" and c["status"] == "True" for c in (item.get("status") or {}).get("conditions", []))
    )


def run(count: int, timeout: float) -> dict[str, Any]:
    plane = start_control_plane()
    processes = []
    try:
        system = plane.namespace("bench-sys")
        namespace = plane.namespace("bench")
        kubeconfig = install_rbac(plane, system, Path(tempfile.mkdtemp(prefix="mcp-operator-bench-")))
        stub_port = free_port()
        processes.append(
            start_process(
                adapter_stub_command(stub_port),
                name="bench-adapter-stub",
                ready_url=f"http://127.0.0.1:{stub_port}/healthz",
            )
        )
        template = f"http://127.0.0.1:{stub_port}" + "/{namespace}/{name}/mcp"
        cmd = operator_command(
            kubeconfig,
            namespaces=[namespace],
            system_namespace=system,
            adapter_url_template=template,
            extra=["--probe-interval", "10", "--log-level", "WARNING"],
        )
        operator = start_process(cmd, name="bench-operator")
        processes.append(operator)
        sampler = Sampler(operator.pid)
        sampler.start()
        time.sleep(3)
        idle_rss = sampler.peak_rss_mb

        with plane.api_client() as api:
            res = Resources(api)
            res.tenant("bench", [namespace])
            start = time.monotonic()
            for i in range(count):
                # "live-" names are answered by the adapter stub, so Upstreams can become Ready.
                res.create("upstreams", namespace, f"live-{i:04d}", {"mcp": {"url": "https://tools.example.com/mcp"}})
                res.create("profiles", namespace, f"p-{i:04d}", {"upstreams": [{"name": f"live-{i:04d}"}]})
            created = time.monotonic() - start
            marks: dict[str, float] = {}
            while time.monotonic() - start < timeout and len(marks) < 3:
                upstreams = res.custom.list_namespaced_custom_object(
                    "mcpgateway.dev", "v1alpha1", namespace, "upstreams"
                )
                profiles = res.custom.list_namespaced_custom_object("mcpgateway.dev", "v1alpha1", namespace, "profiles")
                now = time.monotonic() - start
                if _ready_count(upstreams["items"]) == count:
                    marks.setdefault("upstreams_ready_s", now)
                if _ready_count(profiles["items"]) == count:
                    marks.setdefault("profiles_ready_s", now)
                if len(res.routing(system).get("profiles", [])) == count:
                    marks.setdefault("routing_complete_s", now)
                time.sleep(0.5)
        sampler.sample()
        sampler.stopped.set()
        return {
            "count": count,
            "create_requests_s": round(created, 2),
            **{k: round(v, 2) for k, v in marks.items()},
            "timed_out": len(marks) < 3,
            "operator_idle_rss_mb": round(idle_rss, 1),
            "operator_peak_rss_mb": round(sampler.peak_rss_mb, 1),
            "operator_cpu_s": round(sampler.cpu_seconds, 2),
        }
    finally:
        for process in reversed(processes):
            process.stop()
        plane.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    print(json.dumps(run(args.count, args.timeout), indent=2))


if __name__ == "__main__":
    main()
