"""`mcp-gateway` command line.

    mcp-gateway serve --config routing.yaml [--host H] [--port P] [--database-url DSN] [--metrics-port P]
    mcp-gateway serve --routing-configmap NAMESPACE/NAME [--kubeconfig FILE] ...

    mcp-gateway validate FILE...            # routing/local configs, Tenant/Profile/Upstream manifests
    mcp-gateway keys create|list|revoke ... # API keys, through the admin API
    mcp-gateway tools PROFILE               # what a profile exposes (and hides)
    mcp-gateway tools PROFILE --search "q"  # the tools search_tools would find for a request
    mcp-gateway tools PROFILE --as '{"sub": "alice", "groups": ["ops"]}'  # what that caller would see

`serve` is the default subcommand (see cli_commands.py for the others). The database URL may also come from
MCP_GATEWAY_DATABASE_URL; without one, state is in-process (single replica).

`--max-header-bytes` (env MCP_GATEWAY_MAX_HEADER_BYTES, default 64 KiB) caps a request's head:
larger ones get 431 before the app sees them (mcp_adapter/header_limit.py).

`--metrics-port` serves `/metrics` on a port of its own (bound to `--metrics-host`, default the
`--host`) and no longer on the public one; without it `/metrics` is on the public port as before.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import sys
from collections.abc import Iterator, Sequence

import uvicorn
from mcp_adapter.header_limit import DEFAULT_MAX_HEADER_BYTES, KEEP_ALIVE_SECONDS, header_limited
from mcp_common import jsonlog, tracing

from mcp_gateway import secret_files
from mcp_gateway.app import Source, create_app, metrics_app
from mcp_gateway.auth.secret_keys import SecretKeyWatch
from mcp_gateway.cli_commands import add_commands, run
from mcp_gateway.config_source import ConfigHolder, ConfigMapSource, FileSource
from mcp_gateway.proxy import build_backend
from mcp_gateway.runtime import Gateway
from mcp_gateway.store.base import Store
from mcp_gateway.store.memory import MemoryStore
from mcp_gateway.store.postgres import PostgresStore

log = logging.getLogger("mcp_gateway")

DATABASE_URL_ENV = "MCP_GATEWAY_DATABASE_URL"
SUBCOMMANDS = ("serve", "validate", "keys", "tools")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mcp-gateway", description="Tenant-aware gateway for MCP servers")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the gateway (default)")
    source = serve.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="routing config file (YAML/JSON), reloaded when it changes")
    source.add_argument("--routing-configmap", metavar="NAMESPACE/NAME", help="watch this ConfigMap (key routing.yaml)")
    serve.add_argument(
        "--kubeconfig",
        help="kubeconfig for --routing-configmap and tenants' API-key Secrets (default: in-cluster, then ~/.kube)",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--database-url", default=None, help=f"PostgreSQL DSN (default: ${DATABASE_URL_ENV})")
    serve.add_argument("--metrics-port", type=int, default=None, help="serve /metrics on this port only")
    serve.add_argument("--metrics-host", default=None, help="address of the metrics port (default: --host)")
    serve.add_argument(
        "--max-header-bytes",
        type=int,
        default=int(os.environ.get("MCP_GATEWAY_MAX_HEADER_BYTES", DEFAULT_MAX_HEADER_BYTES)),
        help="largest request head (request line and headers) in bytes; larger ones get 431",
    )
    serve.add_argument("--log-level", default=os.environ.get("MCP_GATEWAY_LOG_LEVEL", "INFO"))
    serve.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=jsonlog.env_flag(os.environ.get(jsonlog.ACCESS_LOG_ENV)),
        help=f"one INFO line per MCP request (default: ${jsonlog.ACCESS_LOG_ENV}, else off; "
        "refusals and errors are always logged)",
    )
    add_commands(sub)
    return parser


def _serve(args: argparse.Namespace) -> int:
    jsonlog.configure(args.log_level.upper(), component="gateway")
    jsonlog.access_log(args.access_log, args.log_level.upper())
    tracing.setup("mcp-gateway")  # off unless OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_TRACES_EXPORTER ask for it
    database_url = args.database_url or os.environ.get(DATABASE_URL_ENV)
    jsonlog.register_secret(database_url)
    holder = ConfigHolder()
    sources: list[Source] = []
    found = True  # False: the ConfigMap does not exist yet (not ready until the watch sees it)
    try:
        if args.config:
            file_source = FileSource(args.config, holder)
            file_source.load_now()
            sources.append(file_source)
        else:
            configmap = ConfigMapSource(args.routing_configmap, holder, args.kubeconfig)
            found = configmap.load_now()
            sources.append(configmap)
    except (OSError, ValueError) as exc:
        log.error("cannot load the routing config: %s", exc)
        return 2
    if found and holder.generation == 0:
        log.error("the routing config is invalid (see above); fix it and start again")
        return 2
    store: Store = PostgresStore(database_url) if database_url else MemoryStore()
    gateway = Gateway(holder, store, build_backend, os.environ)
    gateway.access_log = args.access_log
    gateway.kubeconfig = args.kubeconfig
    # Started after the gateway (it hashes keys with the gateway's pepper); idle unless tenants name Secrets.
    sources.append(SecretKeyWatch(holder, lambda: gateway.secret_keys, args.kubeconfig))
    app = create_app(gateway, sources, public_metrics=args.metrics_port is None)
    state = "postgres" if database_url else "memory"
    log.info("mcp-gateway listening on %s:%d (state: %s)", args.host, args.port, state)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        proxy_headers=True,
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        http=header_limited(args.max_header_bytes, gateway.metrics.connections.inc),
    )
    if args.metrics_port is None:
        uvicorn.Server(config).run()
        return 0
    host = args.metrics_host or args.host
    log.info("metrics on %s:%d/metrics", host, args.metrics_port)
    metrics = _Companion(
        uvicorn.Config(
            metrics_app(gateway),
            host=host,
            port=args.metrics_port,
            log_config=None,
            lifespan="off",
            http=header_limited(args.max_header_bytes),
        )
    )
    _WithCompanion(config, metrics).run()
    return 0


class _Companion(uvicorn.Server):
    """A second server in the same process and loop; the main one handles signals for both."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _WithCompanion(uvicorn.Server):
    """The main server, running a companion server beside it and stopping it on shutdown."""

    def __init__(self, config: uvicorn.Config, companion: uvicorn.Server) -> None:
        super().__init__(config)
        self.companion = companion

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        running = asyncio.get_running_loop().create_task(self.companion.serve())
        try:
            await super().serve(sockets)
        finally:
            self.companion.should_exit = True
            await running

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.companion.should_exit = True
        await super().shutdown(sockets)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in (*SUBCOMMANDS, "-h", "--help"):
        argv = ["serve", *argv]
    args = _parser().parse_args(argv)
    try:
        secret_files.load()  # before anything reads the environment
    except secret_files.SecretFileError as exc:
        print(f"mcp-gateway: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(args)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
