"""Assemble an adapter from its configuration: sources, aggregator, MCP server, ASGI app.

`create_app(config_path)` is what the CLI serves. Start-up connects every
source, waits (bounded) for them, and builds the catalog strictly: a name
collision the prefix policies cannot resolve stops start-up with one message
naming both sources (and no traceback). While running, the config file is watched; changed,
added and removed sources are applied without a restart, and sources whose
configuration did not change keep their sessions.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_adapter.aggregate import Aggregator
from mcp_adapter.config import AdapterConfig, ConfigError, SourceConfig, load_config
from mcp_adapter.exchanged import ExchangedBearer, InboundBearer, exchanged_headers
from mcp_adapter.http_guard import GuardSettings
from mcp_adapter.naming import NameCollision
from mcp_adapter.reload import watch_config
from mcp_adapter.server import Runtime, build_app, build_mcp_server
from mcp_adapter.sources.base import Source

logger = logging.getLogger(__name__)

STARTUP_WAIT_SECONDS = 30.0


def make_source(cfg: SourceConfig, agg: Aggregator) -> Source:
    if cfg.type in ("stdio", "mcp"):
        from mcp_adapter.sources.mcp_source import McpSource

        source = McpSource(cfg, agg.source_changed, agg.resource_updated)
        if cfg.type == "mcp" and cfg.auth is not None:  # the caller's exchanged token on each call (exchanged.py)
            source.http_auth, source.relay_headers = ExchangedBearer(), exchanged_headers
        return source
    if cfg.type == "openapi":
        from mcp_adapter.sources.openapi_source import OpenApiToolSource

        return OpenApiToolSource(cfg)
    from mcp_adapter.sources.http_source import HttpToolSource

    return HttpToolSource(cfg)  # type: ignore[arg-type]


def build_aggregator(config: AdapterConfig) -> Aggregator:
    agg = Aggregator([], separator=config.server.prefix_separator, page_size=config.server.page_size)
    for cfg in config.sources:
        source = make_source(cfg, agg)
        agg.sources[source.name] = source
    return agg


async def apply_config(agg: Aggregator, old: AdapterConfig, new: AdapterConfig) -> None:
    """Bring the running aggregator from `old` to `new`, touching only sources that changed."""
    old_by_name = {s.name: s for s in old.sources}
    new_by_name = {s.name: s for s in new.sources}
    for name in old_by_name.keys() - new_by_name.keys():
        logger.info("config reload: removing source", extra={"source": name})
        await agg.remove_source(name)
    for name, cfg in new_by_name.items():
        if old_by_name.get(name) == cfg:
            continue
        logger.info("config reload: (re)starting source", extra={"source": name})
        await agg.add_source(make_source(cfg, agg))


def _warn_caller_scope(config: AdapterConfig) -> None:
    if warning := config.caller_scope_warning():
        logger.warning(warning)


def create_app(config_path: str | Path, config: AdapterConfig | None = None, bind_host: str = "127.0.0.1") -> ASGIApp:
    config = config or load_config(config_path)
    _warn_caller_scope(config)
    agg = build_aggregator(config)
    runtime = Runtime(agg, trust_caller_header=config.server.trust_caller_header)
    server = build_mcp_server(
        runtime,
        name=config.server.name,
        version=config.server.version,
        instructions=config.server.instructions,
        unknown_tool_as_result=True,
    )
    state: dict[str, Any] = {"config": config}

    async def reload(new: AdapterConfig) -> None:
        await apply_config(agg, state["config"], new)
        state["config"] = new
        _warn_caller_scope(new)

    @contextlib.asynccontextmanager
    async def lifespan(tg: anyio.abc.TaskGroup) -> AsyncIterator[None]:
        await agg.start(tg)
        await agg.wait_ready(STARTUP_WAIT_SECONDS)
        not_ready = [n for n, ok in agg.ready().items() if not ok]
        if not_ready:
            logger.warning("sources not connected at start-up: %s", ", ".join(not_ready))
        try:
            await agg.refresh(strict=True)
        except NameCollision as exc:
            logger.error("start-up failed: %s", exc)
            await agg.stop()
            raise StartupFailed(str(exc)) from None
        logger.info(
            "adapter ready",
            extra={"tools": len(agg.catalog.tools), "prompts": len(agg.catalog.prompts), "sources": list(agg.sources)},
        )
        tg.start_soon(watch_config, Path(config_path), reload)
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                await agg.stop()

    guard = GuardSettings.for_bind(bind_host, config.server.allowed_hosts, config.server.allowed_origins)
    # `auth: {type: exchanged}` sources call with the token the gateway sent for the request (exchanged.py).
    return QuietStartupFailure(InboundBearer(build_app(runtime, server, lifespan_hook=lifespan, guard=guard)))


class StartupFailed(Exception):
    """Start-up cannot continue; the reason was already logged as one clear message."""


class QuietStartupFailure:
    """Keeps a `StartupFailed` from being logged a second time, as a traceback, by the ASGI server.

    Starlette reports a failed lifespan with the formatted traceback as the message, which
    uvicorn logs; for a failure already explained in one line that is noise users must scroll past.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def quiet_send(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed" and "StartupFailed" in message.get("message", ""):
                message = {**message, "message": ""}
            await send(message)

        await self.app(scope, receive, quiet_send)


__all__ = ["ConfigError", "apply_config", "build_aggregator", "create_app", "make_source"]
