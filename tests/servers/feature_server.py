"""Run the feature-complete MCP test server.

    python tests/servers/feature_server.py --transport stdio
    python tests/servers/feature_server.py --transport http --port 8123   # serves /mcp

Over HTTP it serves both protocol eras on one endpoint: stateless 2026-07-28
requests and handshake sessions (initialize + Mcp-Session-Id) up to 2025-11-25.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import uvicorn

# Runnable as a script: make `tests.servers.feature` importable from the repo root.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.servers.feature import build_server
from tests.servers.feature.events import MemoryEventStore


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # stdout carries the stdio protocol: logs go to stderr only.
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    mcp = build_server(args.log_level)
    if args.transport == "stdio":
        mcp.run("stdio")
        return
    app = mcp.streamable_http_app(
        host=args.host,
        event_store=MemoryEventStore(),
        retry_interval=100,  # ms: SSE polling clients reconnect quickly
    )
    # h11 trims optional whitespace around header values as RFC 9110 requires
    # (Mcp-Name: "  tool  " must match "tool"); httptools keeps it.
    uvicorn.run(app, host=args.host, port=args.port, http="h11", log_level=args.log_level.lower())


if __name__ == "__main__":
    main()
