"""`kubectl apply -k examples/k8s-offline` (examples/k8s with its servers in the namespace and
nothing pulled at pod start) on the real node, against the session's release: the three kinds
of Upstream (stdio, OpenAPI, remote MCP) become Ready with their real tool counts, and an MCP
client on the host calls a tool of each through the gateway's ClusterIP Service."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from mcp_types import TextContent

from tests.gateway.support import MODERN, mcp_client
from tests.pods.support import Release, wait_until
from tests.support.kube import REPO
from tests.support.tools import require_tool

pytestmark = [pytest.mark.late_tools, pytest.mark.timeout(3600)]

EXAMPLE = REPO / "examples" / "k8s-offline"
NAMESPACE = "acme-tools"
TENANT = "acme"
# Tools per Upstream: the stdio server's echo and add; the OpenAPI document's two read
# operations (deleteItem is excluded by its `admin` tag); the remote server's search.
TOOL_COUNTS = {"everything": 2, "inventory": 2, "docs-search": 1}


def kubectl(release: Release, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    command = [str(require_tool("kubectl")), f"--kubeconfig={release.node.kubeconfig}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def statuses(release: Release, kind: str) -> dict[str, dict[str, Any]]:
    listed = kubectl(release, "get", kind, "-n", NAMESPACE, "-o", "json")
    assert listed.returncode == 0, listed.stderr
    return {item["metadata"]["name"]: item.get("status") or {} for item in json.loads(listed.stdout)["items"]}


def is_ready(status: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))


@pytest.fixture(scope="module")
def example(release: Release) -> Iterator[str]:
    """The applied example; yields the acme-dev profile's MCP URL once every Upstream is Ready."""
    applied = kubectl(release, "apply", "-k", str(EXAMPLE))
    assert applied.returncode == 0, applied.stdout + applied.stderr

    def upstreams_ready() -> bool:
        found = statuses(release, "upstreams")
        return set(found) == set(TOOL_COUNTS) and all(is_ready(s) for s in found.values())

    def explain() -> str:
        return f"{statuses(release, 'upstreams')}\n{release.describe(NAMESPACE)}"

    wait_until(upstreams_ready, "the example's Upstreams Ready", timeout=240, explain=explain)
    wait_until(lambda: is_ready(statuses(release, "profiles")["acme-dev"]), "Profile acme-dev Ready", explain=explain)
    yield f"{release.gateway_url}/acme-dev/mcp"
    # While the operator still runs (the uninstall test comes later): it cleans up what it made.
    kubectl(release, "delete", "-k", str(EXAMPLE), "--wait", "--timeout=120s", timeout=150)


def test_kubectl_apply_k_ends_in_ready_pods_and_upstreams_with_real_tool_counts(release: Release, example: str) -> None:
    counts = {name: status.get("toolCount") for name, status in statuses(release, "upstreams").items()}
    assert counts == TOOL_COUNTS
    # Every pod of the example (the servers and the adapters the operator made) is Ready.
    pods = release.pods(NAMESPACE)
    assert len(pods) >= 3, release.describe(NAMESPACE)
    for pod in pods:
        assert all(s.ready for s in pod.status.container_statuses or []), release.describe(NAMESPACE)
    # What a user types to check, as the README shows it.
    shown = kubectl(release, "get", "upstreams,profiles", "-A")
    assert shown.returncode == 0 and "everything" in shown.stdout and "acme-dev" in shown.stdout, shown


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_a_stdio_an_openapi_and_a_remote_mcp_tool_answer_through_the_gateway(
    release: Release, example: str, mode: str
) -> None:
    _, headers = release.mint_key(TENANT, f"example-{mode}")
    servers = {p.metadata.labels.get("app"): p.metadata.name for p in release.pods(NAMESPACE)}
    async with mcp_client(example, headers, mode=mode) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        echo = next(n for n in names if n.endswith("echo"))
        get_item = next(n for n in names if n.endswith("getItem"))
        search = next(n for n in names if n.endswith("search"))
        assert not any("deleteItem" in n for n in names), names  # excluded by tag, denied by policy
        answers = {
            "stdio": await client.call_tool(echo, {"text": f"offline ({mode})"}),
            "openapi": await client.call_tool(get_item, {"sku": "A-100"}),
            "remote": await client.call_tool(search, {"query": "keys"}),
        }
    texts = {}
    for kind, result in answers.items():
        assert not result.is_error, (kind, result)
        content = result.content[0]
        assert isinstance(content, TextContent)
        texts[kind] = content.text
    assert texts["stdio"] == f"offline ({mode})"
    # The OpenAPI service's JSON, from its own pod.
    item = json.loads(texts["openapi"])
    assert item["name"] == "anvil" and item["servedBy"] == servers["inventory"], item
    # The remote server answered (so it got the Secret's bearer token), from its own pod.
    assert "Mint an API key" in texts["remote"] and servers["docs-search"] in texts["remote"], texts["remote"]
