"""Build the discovery evaluation catalog (tests/data/discovery/catalog.json) from real definitions.

Sources (each tool keeps its origin):
- Kubernetes OpenAPI v3 documents of k8s.io/kubernetes v1.35.4 (core/v1, apps/v1, batch/v1,
  rbac.authorization.k8s.io/v1, networking.k8s.io/v1), converted by the adapter's own OpenAPI
  converter (one tool per operation, as a profile with an `openapi` source would expose them);
- the reference "everything" MCP server (the pinned install in tests/servers), listed live;
- the repository's feature test server, listed live.

Request bodies' `$defs` (whole Kubernetes object schemas) are dropped to keep the file small; token
counts of "discovery off" are therefore an underestimate (the saving reported is conservative).

Run: python -m bench.discovery_catalog [--k8s-dir DIR]  (needs the Go module cache and node22)
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp_adapter.openapi import operations

from tests.servers.launch import everything_command

K8S_DIR = Path.home() / "go/pkg/mod/k8s.io/kubernetes@v1.35.4/api/openapi-spec/v3"
K8S_DOCS = {
    "api__v1_openapi.json": "kubernetes core/v1",
    "apis__apps__v1_openapi.json": "kubernetes apps/v1",
    "apis__batch__v1_openapi.json": "kubernetes batch/v1",
    "apis__rbac.authorization.k8s.io__v1_openapi.json": "kubernetes rbac.authorization.k8s.io/v1",
    "apis__networking.k8s.io__v1_openapi.json": "kubernetes networking.k8s.io/v1",
}
FIELDS = {"name", "title", "description", "input_schema"}
OUT = Path(__file__).resolve().parent.parent / "tests/data/discovery/catalog.json"


def _slim(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k != "$defs"}


def kubernetes_tools(directory: Path) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    for filename, origin in K8S_DOCS.items():
        doc = json.loads((directory / filename).read_text())
        for op in operations(doc):
            tools.append(
                {
                    "name": op.tool_name,
                    "description": op.description,
                    "inputSchema": _slim(op.input_schema),
                    "origin": f"{origin} {op.method} {op.path}",
                }
            )
    return tools


async def listed_tools(params: StdioServerParameters, origin: str) -> list[dict[str, Any]]:
    async with Client(params, mode="legacy") as client:
        listed = (await client.list_tools()).tools
    dump = {"by_alias": True, "exclude_none": True, "mode": "json", "include": FIELDS}
    return [{**t.model_dump(**dump), "origin": origin} for t in listed]


async def build(k8s_dir: Path) -> list[dict[str, Any]]:
    command, *args = everything_command("stdio")
    everything = await listed_tools(StdioServerParameters(command=command, args=args), "server-everything")
    return kubernetes_tools(k8s_dir) + everything


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--k8s-dir", type=Path, default=K8S_DIR)
    args = parser.parse_args()
    tools = asyncio.run(build(args.k8s_dir))
    names = [t["name"] for t in tools]
    assert len(names) == len(set(names)), "tool names collide"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    lines = ",\n".join(json.dumps(t, ensure_ascii=False, separators=(",", ":")) for t in tools)
    OUT.write_text('{"tools": [\n' + lines + "\n]}\n")  # one tool a line: readable diffs
    print(f"{len(tools)} tools -> {OUT}")


if __name__ == "__main__":
    main()
