"""What the pod tests share: the release on the node (installed once per session by
conftest.py, with PostgreSQL running as a pod) and small helpers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from kubernetes import client as k8s
from mcp_types import TextContent

from tests.gateway.support import MODERN, mcp_client
from tests.support.node import POSTGRES_IMAGE, Node

RELEASE = "mcp-gateway"  # the chart's fullname is then the release name
NAMESPACE = "mcp-system"
API = "mcpgateway.dev/v1alpha1"
# PostgreSQL runs as a pod of its own namespace (not the release's: helm uninstall leaves it alone).
DB_NAMESPACE = "pod-db"
DB_SECRET = "gateway-database"  # the user's own Secret with the DSN (gateway.database.existingSecret)
GATEWAY_REPLICAS = 2
# A stdio MCP server run by the adapter image's own Python and MCP SDK: no registry at pod start.
STDIO_SERVER = """
import socket
from mcp.server.mcpserver import MCPServer

mcp = MCPServer("pod-tools")


@mcp.tool(description="Echo the text back with the name of the pod that served it")
def echo(text: str) -> str:
    return f"{socket.gethostname()}: {text}"


mcp.run("stdio")
"""


def wait_until(check: Callable[[], Any], what: str, timeout: float = 180, explain: Callable[[], str] = str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout:.0f}s\n{explain()}")
        time.sleep(1)


@dataclass
class Release:
    node: Node
    api: Any
    gateway_url: str  # http://<ClusterIP>:<port> of the gateway Service
    admin_token: str
    install_seconds: float

    def pods(self, namespace: str, selector: str = "") -> list[Any]:
        return list(k8s.CoreV1Api(self.api).list_namespaced_pod(namespace, label_selector=selector).items)

    def gateway_pod_urls(self) -> list[str]:
        """http://<pod IP>:8080 of each Ready gateway pod (the host is on the pods' bridge)."""
        pods = self.pods(NAMESPACE, "app.kubernetes.io/component=gateway")
        ready = [p for p in pods if p.status.pod_ip and all(s.ready for s in p.status.container_statuses or [False])]
        return [f"http://{p.status.pod_ip}:8080" for p in ready if p.metadata.deletion_timestamp is None]

    def describe(self, namespace: str) -> str:
        lines = []
        for pod in self.pods(namespace):
            statuses = pod.status.container_statuses or []
            lines.append(f"{pod.metadata.name}: {pod.status.phase} {[(s.name, s.ready, s.state) for s in statuses]}")
            lines.append(self.node.pod_logs(namespace, pod.metadata.name))
        return "\n".join(lines)

    def mint_key(self, tenant: str, name: str, base_url: str | None = None) -> tuple[str, dict[str, str]]:
        """(key id, headers) of an API key of `tenant`, minted through the admin API (by default via
        the gateway's ClusterIP; `base_url` names one replica)."""
        minted = httpx.post(
            f"{base_url or self.gateway_url}/admin/v1/tenants/{tenant}/keys",
            json={"name": name},
            headers=self.admin_headers,
            timeout=10,
        )
        assert minted.status_code == 201, minted.text
        body = minted.json()
        return body["id"], {"Authorization": f"Bearer {body['key']}"}

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}


def postgres_objects(password: str) -> tuple[k8s.V1Pod, k8s.V1Service]:
    """PostgreSQL from the locally built stand-in image (the official image's POSTGRES_* contract),
    as a pod with its data in the container's own layer: the tests need it for one session."""
    labels = {"app": "postgres"}
    container = k8s.V1Container(
        name="postgres",
        image=POSTGRES_IMAGE,
        image_pull_policy="Never",
        env=[
            k8s.V1EnvVar(name="POSTGRES_USER", value="mcp"),
            k8s.V1EnvVar(name="POSTGRES_PASSWORD", value=password),
            k8s.V1EnvVar(name="POSTGRES_DB", value="mcp_gateway"),
        ],
        ports=[k8s.V1ContainerPort(container_port=5432)],
        readiness_probe=k8s.V1Probe(
            _exec=k8s.V1ExecAction(command=["pg_isready", "-h", "127.0.0.1", "-U", "mcp", "-d", "mcp_gateway"]),
            period_seconds=1,
        ),
        security_context=k8s.V1SecurityContext(
            allow_privilege_escalation=False, capabilities=k8s.V1Capabilities(drop=["ALL"])
        ),
    )
    pod = k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="postgres", labels=labels),
        spec=k8s.V1PodSpec(containers=[container], termination_grace_period_seconds=1),
    )
    service = k8s.V1Service(
        metadata=k8s.V1ObjectMeta(name="postgres"),
        spec=k8s.V1ServiceSpec(selector=labels, ports=[k8s.V1ServicePort(port=5432, target_port=5432)]),
    )
    return pod, service


@dataclass
class Load:
    """Bounded client load: `workers` SDK clients (2026-07-28 era, stateless) calling an echo tool
    in turn, each answer checked against what was sent. A failed call is recorded and the worker
    reconnects; a wrong answer is recorded apart (it must never happen)."""

    url: str
    headers: dict[str, str]
    tool: str
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)

    async def worker(self, number: int, stop: asyncio.Event) -> None:
        sent = 0
        while not stop.is_set():
            try:
                async with mcp_client(self.url, self.headers, mode=MODERN) as client:
                    while not stop.is_set():
                        sent += 1
                        text = f"worker {number} call {sent}"
                        result = await asyncio.wait_for(client.call_tool(self.tool, {"text": text}), timeout=30)
                        content = result.content[0] if result.content else None
                        if result.is_error or not isinstance(content, TextContent):
                            self.failures.append(f"{text}: {result.content}")
                        elif content.text.split(": ", 1)[-1] != text:
                            self.wrong.append(f"{text}: {content.text}")
                        else:
                            self.ok += 1
                        await asyncio.sleep(0.05)  # paced: a bounded load on a shared machine
            except Exception as exc:  # a transport error or a JSON-RPC error answer
                self.failures.append(f"worker {number} call {sent}: {exc!r}")
                await asyncio.sleep(0.2)

    async def wait_for_calls(self, count: int, timeout: float = 120) -> None:
        """Until `count` more calls have succeeded (so the load runs on both sides of a fault)."""
        target = self.ok + count
        deadline = time.monotonic() + timeout
        while self.ok < target:
            assert time.monotonic() < deadline, f"load stalled at {self.ok} calls; failures: {self.failures[-3:]}"
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def running_load(url: str, headers: dict[str, str], tool: str, workers: int = 4) -> AsyncIterator[Load]:
    load = Load(url, headers, tool)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(load.worker(n, stop)) for n in range(workers)]
    try:
        await load.wait_for_calls(workers * 3)
        yield load
    finally:
        stop.set()
        await asyncio.gather(*tasks)
