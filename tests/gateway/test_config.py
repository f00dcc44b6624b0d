"""Routing config changes reach a running gateway: a watched file and a watched ConfigMap.
An invalid update is refused with a clear log line and the last good config keeps serving."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from kubernetes import client as k8s

from tests.gateway.support import Spawn, profile, rpc, start_gateway
from tests.support.kube import ControlPlane
from tests.support.processes import ManagedProcess, free_port

HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def wait_status(url: str, status: int, timeout: float = 10.0) -> float:
    """Seconds until `url` answers tools/list with `status` (fails after `timeout`; not a speed check)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if httpx.post(url, json=rpc("tools/list"), headers=HEADERS, timeout=5).status_code == status:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer {status} within {timeout}s")


WATCH_SECONDS = 30.0  # generous: a change is seen in well under a second on an idle machine


def wait_log(process: ManagedProcess, text: str, timeout: float = WATCH_SECONDS) -> str:
    """The process's log once it contains `text` (an event, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while text not in (log := process.log_text()):
        assert time.monotonic() < deadline, f"{process.name} never logged {text!r}"
        time.sleep(0.1)
    return log


def config_generation(base: str) -> int:
    """The routing config generation the gateway serves (public in /readyz, unlike /metrics)."""
    return int(httpx.get(f"{base}/readyz", timeout=10).json()["configGeneration"])


def routing_doc(feature: str, profiles: list[str]) -> dict[str, Any]:
    return {
        "tenants": [{"id": "acme"}],
        "profiles": [profile(p, "acme", [("feat", feature)], auth={"mode": "none"}) for p in profiles],
    }


async def test_file_reload_and_last_good_config(
    spawn: Spawn, feature: str, routing: Callable[[dict[str, Any]], Path]
) -> None:
    path = routing(routing_doc(feature, ["one"]))
    gateway = start_gateway(spawn, path)
    wait_status(gateway.url("one"), 200)
    # Not served: without an API key an unknown profile answers like an apiKey profile (401).
    wait_status(gateway.url("two"), 401)

    path.write_text(yaml.safe_dump(routing_doc(feature, ["one", "two"])))
    wait_status(gateway.url("two"), 200, timeout=WATCH_SECONDS)

    broken = routing_doc(feature, ["one", "two", "three"])
    broken["profiles"][2]["tenant"] = "nobody"
    path.write_text(yaml.safe_dump(broken))
    log = wait_log(gateway.process, "keeping the last good config")
    assert "unknown tenant 'nobody'" in log
    assert config_generation(gateway.base) == 2  # the bad text was seen and not installed
    wait_status(gateway.url("two"), 200)
    wait_status(gateway.url("three"), 401)


async def test_configmap_watch(spawn: Spawn, feature: str, kube: ControlPlane) -> None:
    namespace = kube.namespace("gw")
    core = k8s.CoreV1Api(kube.api_client())
    body = k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name="routing"),
        data={"routing.yaml": yaml.safe_dump(routing_doc(feature, ["one"]))},
    )
    core.create_namespaced_config_map(namespace, body)
    port = free_port()
    cmd = [sys.executable, "-m", "mcp_gateway.cli", "serve", "--routing-configmap", f"{namespace}/routing"]
    cmd += ["--kubeconfig", str(kube.kubeconfig), "--port", str(port)]
    process = spawn(cmd, name="gw-configmap", ready_url=f"http://127.0.0.1:{port}/readyz")
    base = f"http://127.0.0.1:{port}"
    wait_status(f"{base}/one/mcp", 200)
    core.patch_namespaced_config_map(
        "routing", namespace, {"data": {"routing.yaml": yaml.safe_dump(routing_doc(feature, ["one", "two"]))}}
    )
    wait_status(f"{base}/two/mcp", 200, timeout=WATCH_SECONDS)
    assert config_generation(base) == 2
    core.patch_namespaced_config_map("routing", namespace, {"data": {"routing.yaml": "profiles: [nope"}})
    # The watch delivered the bad update: the gateway says so, names the ConfigMap, and keeps generation 2.
    log = wait_log(process, f"routing config from configmap {namespace}/routing is invalid")
    assert "keeping the last good config (generation 2)" in log
    assert config_generation(base) == 2
    wait_status(f"{base}/two/mcp", 200)


async def test_configmap_created_after_start(spawn: Spawn, feature: str, kube: ControlPlane) -> None:
    """In a cluster the gateway may start before the operator writes its ConfigMap: it serves, reports
    not ready with a clear reason, and picks the ConfigMap up once it is created (no crash loop)."""
    namespace = kube.namespace("gw")
    core = k8s.CoreV1Api(kube.api_client())
    port = free_port()
    cmd = [sys.executable, "-m", "mcp_gateway.cli", "serve", "--routing-configmap", f"{namespace}/routing"]
    cmd += ["--kubeconfig", str(kube.kubeconfig), "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    gateway = spawn(cmd, name="gw-configmap-late", ready_url=f"{base}/healthz")

    waiting = httpx.get(f"{base}/readyz", timeout=5)
    assert waiting.status_code == 503
    assert waiting.json() == {
        "status": "not ready",
        "reason": "no routing config loaded yet",
        "configGeneration": 0,
        "upstreams": {},
    }
    wait_status(f"{base}/one/mcp", 401)  # no profile yet: answered like an apiKey profile
    log = gateway.log_text()
    assert f"routing ConfigMap {namespace}/routing does not exist yet" in log
    assert "Traceback" not in log

    body = k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name="routing"),
        data={"routing.yaml": yaml.safe_dump(routing_doc(feature, ["one"]))},
    )
    core.create_namespaced_config_map(namespace, body)
    wait_status(f"{base}/one/mcp", 200, timeout=WATCH_SECONDS)
    ready = httpx.get(f"{base}/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["status"] == "ready" and ready.json()["configGeneration"] == 1
    assert gateway.alive()
