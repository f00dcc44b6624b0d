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
from tests.support.processes import free_port

HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def wait_status(url: str, status: int, timeout: float = 5.0) -> float:
    """Seconds until `url` answers tools/list with `status`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if httpx.post(url, json=rpc("tools/list"), headers=HEADERS, timeout=5).status_code == status:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer {status} within {timeout}s")


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
    assert wait_status(gateway.url("one"), 200) < 1
    # Not served: without an API key an unknown profile answers like an apiKey profile (401).
    assert wait_status(gateway.url("two"), 401) < 1

    path.write_text(yaml.safe_dump(routing_doc(feature, ["one", "two"])))
    assert wait_status(gateway.url("two"), 200) < 5

    broken = routing_doc(feature, ["one", "two", "three"])
    broken["profiles"][2]["tenant"] = "nobody"
    path.write_text(yaml.safe_dump(broken))
    deadline = time.monotonic() + 5
    while "keeping the last good config" not in gateway.process.log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = gateway.process.log_text()
    assert "keeping the last good config" in log and "unknown tenant 'nobody'" in log
    assert wait_status(gateway.url("two"), 200) < 1
    assert wait_status(gateway.url("three"), 401) < 1


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
    spawn(cmd, name="gw-configmap", ready_url=f"http://127.0.0.1:{port}/readyz")
    base = f"http://127.0.0.1:{port}"
    assert wait_status(f"{base}/one/mcp", 200) < 1
    core.patch_namespaced_config_map(
        "routing", namespace, {"data": {"routing.yaml": yaml.safe_dump(routing_doc(feature, ["one", "two"]))}}
    )
    assert wait_status(f"{base}/two/mcp", 200, timeout=5) < 5
    core.patch_namespaced_config_map("routing", namespace, {"data": {"routing.yaml": "profiles: [nope"}})
    time.sleep(1)
    assert wait_status(f"{base}/two/mcp", 200) < 1
