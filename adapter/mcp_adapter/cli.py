"""`mcp-adapter --config FILE [--host H] [--port P] [--max-header-bytes N]`: serve the adapter with uvicorn.

Exit status 2 with one line per problem when the configuration is invalid.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings

import uvicorn
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp_common import jsonlog, tracing

from mcp_adapter.config import ConfigError, load_config
from mcp_adapter.header_limit import DEFAULT_MAX_HEADER_BYTES, KEEP_ALIVE_SECONDS, header_limited
from mcp_adapter.metrics import METRICS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mcp-adapter", description="Serve MCP sources as one streamable-HTTP endpoint"
    )
    parser.add_argument("--config", required=True, help="adapter YAML configuration file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--max-header-bytes",
        type=int,
        default=DEFAULT_MAX_HEADER_BYTES,
        help="largest request head (request line and headers) in bytes; larger ones get 431",
    )
    args = parser.parse_args(argv)

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"mcp-adapter: invalid configuration in {args.config}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2

    jsonlog.configure(config.log_level, component="mcp-adapter")
    # Per-request lines (uvicorn's access log, one per upstream HTTP call) cost real CPU per call and
    # name upstream URLs: only with `accessLog: true` or at DEBUG. Warnings and errors still come through.
    jsonlog.access_log(config.access_log, config.log_level)
    tracing.setup("mcp-adapter")  # off unless OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_TRACES_EXPORTER ask for it
    warnings.simplefilter("ignore", MCPDeprecationWarning)
    from mcp_adapter.app import create_app

    app = create_app(args.config, config, bind_host=args.host)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            log_config=None,
            lifespan="on",
            timeout_graceful_shutdown=10,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            http=header_limited(args.max_header_bytes, METRICS.connections.inc),
            access_log=config.access_log or config.log_level == "DEBUG",
        )
    )
    server.run()
    if not server.started:
        logging.getLogger("mcp_adapter").error("adapter failed to start; see the errors above")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
