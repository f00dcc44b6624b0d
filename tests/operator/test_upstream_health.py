"""The Upstream's Healthy condition beside Ready: an operator probing a real MCP server
(standing in for the adapter Pod, which cannot run without a kubelet) that dies and comes
back, judged with the Upstream's healthCheck thresholds, with no flapping in between."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp_operator.probe import ProbeResult
from mcp_operator.upstream_health import HealthTracker

from tests.operator.support import Resources, install_rbac, operator_command, wait_for
from tests.servers.launch import http_command, http_url
from tests.support.kube import ControlPlane
from tests.support.processes import ManagedProcess, free_port, start_process

PREFIX = "ophl"  # not matched by the shared operator's opt-* namespaces


@dataclass
class Env:
    res: Resources
    namespace: str
    port: int  # where every Upstream's "adapter" answers


@pytest.fixture(scope="module")
def env(kube: ControlPlane) -> Iterator[Env]:
    system = kube.namespace(f"{PREFIX}sys")
    workdir = Path(tempfile.mkdtemp(prefix="mcp-operator-health-"))
    kubeconfig = install_rbac(kube, system, workdir, watch_namespaces=[f"{PREFIX}-*"])
    port = free_port()
    cmd = operator_command(
        kubeconfig, namespaces=[f"{PREFIX}-*"], system_namespace=system, adapter_url_template=http_url(port)
    )
    process = start_process(cmd, name="operator-health")
    with kube.api_client() as api:
        yield Env(Resources(api), kube.namespace(PREFIX), port)
    process.stop()


def start_upstream(port: int) -> ManagedProcess:
    return start_process(http_command(port), name="upstream", ready_url=http_url(port))


def condition(env: Env, name: str, type_: str) -> dict[str, Any] | None:
    return env.res.condition("upstreams", env.namespace, name, type_)


def wait_status(env: Env, name: str, type_: str, status: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        found = condition(env, name, type_)
        return found if found and found["status"] == status else None

    return wait_for(check, timeout=60, interval=0.1, what=f"{name} {type_}={status}")


def test_healthy_follows_a_real_upstream_that_dies_and_recovers_without_flapping(env: Env) -> None:
    upstream = start_upstream(env.port)
    spec = {"mcp": {"url": "https://x.example/mcp"}, "healthCheck": {"healthyThreshold": 2, "unhealthyThreshold": 4}}
    env.res.create("upstreams", env.namespace, "tools", spec)
    try:
        healthy = wait_status(env, "tools", "Healthy", "True")
        generation = env.res.get("upstreams", env.namespace, "tools")["metadata"]["generation"]  # type: ignore[index]
        assert healthy["reason"] == "ProbesPassing" and healthy["observedGeneration"] == generation
        row = next(r for r in env.res.table("upstreams", env.namespace) if r["Name"] == "tools")
        assert (row["Ready"], row["Healthy"]) == ("True", "True")
        # Probes keep passing: the condition, its transition time included, stays as it is.
        time.sleep(3)
        assert condition(env, "tools", "Healthy") == healthy

        upstream.stop()
        # Ready reports the failed probe at once; Healthy waits for four failures in a row.
        wait_status(env, "tools", "Ready", "False")
        assert condition(env, "tools", "Healthy") == healthy
        down = wait_status(env, "tools", "Healthy", "False")
        assert down["reason"] == "ProbesFailing" and http_url(env.port) in down["message"]
        assert down["lastTransitionTime"] >= healthy["lastTransitionTime"]
        row = next(r for r in env.res.table("upstreams", env.namespace) if r["Name"] == "tools")
        assert (row["Ready"], row["Healthy"]) == ("False", "False")

        upstream = start_upstream(env.port)
        up = wait_status(env, "tools", "Healthy", "True")
        assert up["reason"] == "ProbesPassing" and up["lastTransitionTime"] >= down["lastTransitionTime"]
        env.res.wait_event(env.namespace, "tools", "ProbesFailing", "Warning")
        events = env.res.wait_event(env.namespace, "tools", "ProbesPassing", "Normal")
        # One transition each way, no flapping in between.
        assert [r for r, _, _ in events if r in ("ProbesFailing", "ProbesPassing")].count("ProbesFailing") == 1
    finally:
        upstream.stop()
        env.res.delete("upstreams", env.namespace, "tools")


def test_an_upstream_that_must_not_be_probed_is_unknown_unprobed(env: Env) -> None:
    upstream = start_upstream(env.port)
    spec = {"mcp": {"url": "https://x.example/mcp"}, "healthCheck": {"enabled": False}}
    env.res.create("upstreams", env.namespace, "per-user", spec)
    try:
        unknown = wait_status(env, "per-user", "Healthy", "Unknown")
        assert unknown["reason"] == "Unprobed" and "healthCheck.enabled is false" in unknown["message"]
        row = next(r for r in env.res.table("upstreams", env.namespace) if r["Name"] == "per-user")
        assert row["Healthy"] == "Unknown"
    finally:
        upstream.stop()
        env.res.delete("upstreams", env.namespace, "per-user")


def _judge_all(outcomes: str, spec: dict[str, Any]) -> list[str]:
    """Feed probe outcomes ('+' passed, '-' failed) through the tracker as the operator does; the statuses."""
    tracker, previous, statuses = HealthTracker(), None, []
    for outcome in outcomes:
        result = ProbeResult("http://a/mcp", ok=outcome == "+", error="" if outcome == "+" else "refused")
        judged = tracker.judge(("ns", "up"), spec, previous, result)
        previous = {"status": judged.status, "reason": judged.reason, "message": judged.message}
        statuses.append(judged.status)
    return statuses


def test_hysteresis_thresholds() -> None:
    spec = {"healthCheck": {"healthyThreshold": 2, "unhealthyThreshold": 3}}
    # Unknown until the first passed probe (as in the gateway), or until three failures in a row.
    assert _judge_all("+", spec) == ["True"]
    assert _judge_all("--+", spec) == ["Unknown", "Unknown", "True"]
    assert _judge_all("---", spec) == ["Unknown", "Unknown", "False"]
    # A flapping upstream (never three failures in a row) stays healthy...
    assert set(_judge_all("++-+--+-+--+", spec)[1:]) == {"True"}
    # ...three in a row make it unhealthy, and one pass alone does not bring it back.
    assert _judge_all("++---+-++", spec)[2:] == ["True", "True", "False", "False", "False", "False", "True"]
    assert _judge_all("-", {"replicas": 0, "healthCheck": {"enabled": False}}) == ["Unknown"]
