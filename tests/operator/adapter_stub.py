"""Stands in for the adapter Pods that cannot run here (no kubelet): one real
MCP server (the feature server) answering at /{namespace}/{name}/mcp for
Upstreams whose name starts with "live-"; any other Upstream's "adapter" is
down (HTTP 503), as an unready Pod would be.

    python tests/operator/adapter_stub.py --port 8123
The operator is pointed here with --adapter-url-template
'http://127.0.0.1:8123/{namespace}/{name}/mcp'.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.servers.feature import build_server

PATH = re.compile(r"^/(?P<namespace>[^/]+)/(?P<name>[^/]+)/mcp/?$")


def wrap(inner: Any) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await inner(scope, receive, send)
            return
        match = PATH.match(scope["path"])
        if scope["path"] == "/healthz":
            await _plain(send, 200, b"ok")
        elif match and match["name"].startswith("live-"):
            await inner({**scope, "path": "/mcp", "raw_path": b"/mcp"}, receive, send)
        else:
            await _plain(send, 503, b"adapter down")

    return app


async def _plain(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    inner = build_server().streamable_http_app(host="127.0.0.1")
    uvicorn.run(wrap(inner), host="127.0.0.1", port=args.port, log_level="warning", http="h11")


if __name__ == "__main__":
    main()
