"""Sources that are MCP servers: `stdio` children and remote streamable-HTTP (`mcp`).

Session scope:
- `shared`: one upstream session serves every caller (stateless servers).
- `per-caller`: a bounded pool of sessions (for stdio: child processes) keyed
  by the caller identity, at most `pool.maxPerCaller` per caller and
  `pool.maxCallers` callers; sessions idle for `pool.idleSeconds` are closed.
  Callers never share a session, so upstream state (subscriptions, log level,
  server-side context) and server-to-client traffic never cross callers.

Era matching (`protocol: auto`): a client is served by an upstream session of
its own protocol era whenever the upstream speaks it, so a handshake-era
client sees exactly what it would see talking to the server directly
(server-to-client requests, `logging/setLevel`, `resources/subscribe`) and a
2026-07-28 client gets input-required rounds, per-request log levels and
listen streams from the server itself. Only an upstream that speaks one era
is bridged: it gets one session (one child, for stdio) per caller scope, and
no second one is opened before the first negotiation says so. The catalog is
listed through a session of the newest era.

Why a stdio server speaking BOTH eras gets a child per era in use (per caller
scope) rather than one bridged child: a server can implement an interaction
in one era's terms only, and the adapter cannot bridge what the server itself
refuses. Measured with the official conformance suite against the test server:
one handshake child fails the 10 `input-required-result-*` scenarios (the
server's tools return `InputRequiredResult`, which a handshake session cannot
carry: "Handler returned an invalid result"); one 2026-07-28 child fails
`tools-call-elicitation`, `elicitation-sep1034-defaults` and
`elicitation-sep1330-enums` (the tools send `elicitation/create` as a server
request, which a stateless session has no back-channel for). The cost: a
dual-era server holds separate in-memory state per era, and the second child
exists only once a client of that era came. Pin `protocol: legacy` or
`2026-07-28` to run exactly one child and bridge the other era.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import anyio.abc
import httpx2
import mcp_types as types
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import MCP_DEFAULT_SSE_READ_TIMEOUT, MCP_DEFAULT_TIMEOUT
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel

from mcp_adapter.config import McpRemoteSource, StdioSource, resolve
from mcp_adapter.downstream import LEGACY, MODERN, Downstream
from mcp_adapter.keepalive import ClientPool
from mcp_adapter.metrics import METRICS
from mcp_adapter.passthrough import RelayTarget
from mcp_adapter.relay_client import HeaderHook, RelayClient
from mcp_adapter.sources.base import ChangeHook, Source, UpdateHook
from mcp_adapter.stdio import ChildSpec, spawn_child
from mcp_adapter.upstream import Backoff, Streams, UpstreamSession

logger = logging.getLogger(__name__)

CATALOG_CALLER = ""
"""The caller whose session a per-caller source lists its catalog through (anonymous callers share it)."""

R = TypeVar("R", bound=BaseModel)
_MAX_PAGES = 1000
RELAY_MAX_CONNECTIONS = 128
"""Pooled connections of a source's pass-through client (`relay_target`), all kept alive when idle."""
POOL_LIMITS = httpx2.Limits(max_connections=100, max_keepalive_connections=100, keepalive_expiry=5.0)
"""The SDK-path sessions' shared client (`ClientPool`): httpx's own ceiling and idle expiry, all kept alive."""
_MAX_REMEMBERED_LEVELS = 10_000
_RESERVED_META = ("io.modelcontextprotocol/", "progressToken")


def forwardable_meta(meta: Any, modern: bool = False) -> dict[str, Any] | None:
    """The client's `_meta` minus keys the upstream session stamps itself (era envelope, progress).

    A 2026-07-28 client's per-request log level is kept for a 2026-07-28 upstream: logging is opt-in per request.
    """
    if not meta:
        return None
    raw = meta if isinstance(meta, dict) else dict(meta)
    kept = {
        k: v for k, v in raw.items() if not k.startswith(_RESERVED_META) or (modern and k == types.LOG_LEVEL_META_KEY)
    }
    return kept or None


def without_upstream_identity(result: R) -> R:
    """The upstream's result minus its `serverInfo` stamp: the client talks to the adapter, which stamps its own."""
    meta = getattr(result, "meta", None)
    if not meta or types.SERVER_INFO_META_KEY not in meta:
        return result
    kept = {k: v for k, v in meta.items() if k != types.SERVER_INFO_META_KEY}
    return result.model_copy(update={"meta": kept or None})


class McpSource(Source):
    http_auth: Any = None
    """An `httpx2.Auth` applied to every HTTP request of a session with a remote upstream (the gateway adds trace
    context and the caller)."""
    relay_headers: HeaderHook | None = None
    """The same for pass-through calls (`relay_target`): headers to add to each request."""

    def __init__(self, config: StdioSource | McpRemoteSource, on_change: ChangeHook, on_update: UpdateHook) -> None:
        super().__init__(config.name, config)
        self.kind = config.type
        self.cfg = config
        self._on_change = on_change
        self._on_update = on_update
        self._sessions: dict[str, list[UpstreamSession]] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self._lock = anyio.Lock()
        self._closing = False
        self._levels: OrderedDict[str, types.LoggingLevel] = OrderedDict()  # handshake callers' logging/setLevel
        self._one_era: str | None = {"legacy": LEGACY, "2026-07-28": MODERN}.get(config.protocol)
        self._relay_client: RelayClient | None = None
        self._http_pool = ClientPool(self._http_client)

    # -- sessions ------------------------------------------------------------

    def _opener(self) -> Any:
        cfg = self.cfg
        if isinstance(cfg, StdioSource):
            env = {**os.environ, **{k: resolve(v) or "" for k, v in cfg.env.items()}}
            spec = ChildSpec(cfg.name, cfg.command, list(cfg.args), env, cfg.cwd, cfg.stop_grace_seconds)

            @asynccontextmanager
            async def open_stdio() -> AsyncIterator[Streams]:
                async with spawn_child(spec) as child:
                    yield child.read, child.write, child.exited

            return open_stdio
        headers = self._remote_headers()
        url = cfg.url

        @asynccontextmanager
        async def open_http() -> AsyncIterator[Streams]:
            # One pooled client for all of this source's sessions (keepalive.py): no connections per session.
            async with (
                self._http_pool.borrow(headers) as client,
                streamable_http_client(url, http_client=client) as (read, write),
            ):
                yield read, write, None

        return open_http

    def _http_client(self, headers: dict[str, str]) -> Any:
        # The SDK's client (create_mcp_http_client) with every pooled connection kept alive: httpx keeps
        # 20, so beyond 20 calls in flight each closed its connection on release and the next opened one.
        timeout = httpx2.Timeout(MCP_DEFAULT_TIMEOUT, read=MCP_DEFAULT_SSE_READ_TIMEOUT)
        return httpx2.AsyncClient(headers=headers, auth=self.http_auth, timeout=timeout, limits=POOL_LIMITS)

    def relay_target(self) -> RelayTarget | None:
        """Where 2026-07-28 `tools/call` requests may be passed through (`passthrough.py`), else None.

        Only a remote, `shared` source whose catalog session negotiated 2026-07-28: a stateless
        upstream holds nothing per session, so one pooled HTTP client serves every caller.
        """
        cfg = self.cfg
        if not isinstance(cfg, McpRemoteSource) or cfg.scope != "shared" or self._one_era == LEGACY or self._closing:
            return None
        catalog = self._catalog_session()
        session = catalog.session if catalog is not None else None
        if session is None or session.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            return None
        if self._relay_client is None:
            self._relay_client = RelayClient(
                cfg.url,
                self._remote_headers(),
                extra_headers=self.relay_headers,
                max_connections=RELAY_MAX_CONNECTIONS,
            )
        return RelayTarget(self._relay_client, session.protocol_version, cfg.timeout_seconds)

    def session_relay_ready(self) -> bool:
        """May 2026-07-28 tool calls be served on the upstream session directly (session_relay.py)?

        Once the catalog session is connected (its era known); `session_for` picks the caller's session.
        """
        catalog = self._catalog_session()
        return not self._closing and catalog is not None and catalog.session is not None

    def _remote_headers(self) -> dict[str, str]:
        assert isinstance(self.cfg, McpRemoteSource)
        return {k: v for k, v in ((k, resolve(v)) for k, v in self.cfg.headers.items()) if v is not None}

    def _new_session(self, caller: str, era: str) -> UpstreamSession:
        cfg = self.cfg
        protocol = cfg.protocol if cfg.protocol != "auto" or era == MODERN else "legacy-first"
        return UpstreamSession(
            cfg.name,
            self._opener(),
            kind=cfg.type,
            protocol=protocol,
            connect_timeout=cfg.connect_timeout_seconds,
            call_timeout=cfg.timeout_seconds,
            backoff=Backoff(cfg.restart.initial_backoff, cfg.restart.max_backoff),
            on_notification=self._notification,
            caller=caller,
            era=era,
            watch_catalog=caller == CATALOG_CALLER and era == MODERN,
        )

    @property
    def session_scope(self) -> str:
        return self.cfg.scope

    def _key(self, caller: str) -> str:
        return caller if self.cfg.scope == "per-caller" else CATALOG_CALLER

    def _era(self, era: str) -> str:
        """The era of the session that serves a client of `era`: its own, unless the upstream speaks only one."""
        if self._one_era is None:
            catalog = self._catalog_session()
            if catalog is not None and catalog.session is not None and not catalog.modern:
                self._one_era = LEGACY  # discovery fell back to the handshake: a handshake-only upstream
                catalog.era = LEGACY  # so it serves every client, instead of a second session of that era
        return self._one_era or era

    def _catalog_session(self) -> UpstreamSession | None:
        """The session opened at start: the catalog is listed and readiness judged through it."""
        group = self._sessions.get(CATALOG_CALLER)
        return group[0] if group else None

    async def _era_known(self) -> None:
        """Wait (bounded) for the first negotiation when the upstream's eras are not known yet.

        Deciding before it would open a second session (a second child, for stdio) for a client
        of the other era even when the upstream turns out to speak only one.
        """
        catalog = self._catalog_session()
        if self._one_era is None and catalog is not None and not catalog.ever_connected:
            with anyio.move_on_after(self.cfg.connect_timeout_seconds):
                await catalog.connected.wait()

    async def session_for(self, caller: str, era: str = MODERN) -> UpstreamSession:
        await self._era_known()
        key, era = self._key(caller), self._era(era)
        group = self._sessions.get(key, [])
        for session in group:  # fast path, no lock: an idle session of the right era
            if session.era == era and not session.inflight:
                return session
        async with self._lock:
            group = self._sessions.get(key, [])
            existing = [s for s in group if s.era == era]
            idle = [s for s in existing if s.busy == 0]
            if idle:
                return idle[0]
            if existing and len(existing) >= self.cfg.pool.max_per_caller:
                return min(existing, key=lambda s: s.busy)
            if not group and key != CATALOG_CALLER and self.caller_count >= self.cfg.pool.max_callers:
                self._evict_lru()
            return self._open(key, era)

    def _open(self, key: str, era: str) -> UpstreamSession:
        assert self._tg is not None
        session = self._new_session(key, era)
        self._sessions.setdefault(key, []).append(session)
        METRICS.sessions.labels(source=self.name).set(self.session_count)
        self._tg.start_soon(self._run_session, session)
        return session

    @property
    def caller_count(self) -> int:
        return len([k for k in self._sessions if k != CATALOG_CALLER])

    async def _run_session(self, session: UpstreamSession) -> None:
        try:
            await session.run()
        finally:
            group = self._sessions.get(session.caller, [])
            if session in group:
                group.remove(session)
                if not group:
                    self._sessions.pop(session.caller, None)
            METRICS.sessions.labels(source=self.name).set(self.session_count)

    def _evict_lru(self) -> None:
        candidates = [
            (max(s.last_used for s in group), key)
            for key, group in self._sessions.items()
            if key != CATALOG_CALLER and all(s.busy == 0 for s in group)
        ]
        if not candidates:
            raise MCPError(
                code=types.INTERNAL_ERROR,
                message=f"source {self.name!r} already serves its maximum of {self.cfg.pool.max_callers} callers "
                "(pool.maxCallers) and all are busy; retry later",
            )
        _, key = min(candidates)
        self._retire(key)

    def _retire(self, key: str) -> None:
        assert self._tg is not None
        for session in self._sessions.pop(key, []):
            self._tg.start_soon(session.close)
        logger.info("closed idle per-caller sessions", extra={"source": self.name, "caller": key})

    async def _evict_idle(self) -> None:
        idle_after = self.cfg.pool.idle_seconds
        while True:
            await anyio.sleep(min(idle_after / 2, 30))
            now = time.monotonic()
            async with self._lock:
                for key, group in list(self._sessions.items()):
                    if key == CATALOG_CALLER:
                        continue
                    if all(s.busy == 0 and now - s.last_used > idle_after for s in group):
                        self._retire(key)

    @property
    def session_count(self) -> int:
        return sum(len(g) for g in self._sessions.values())

    # -- lifecycle -------------------------------------------------------------

    async def start(self, tg: anyio.abc.TaskGroup) -> None:
        self._tg = tg
        self._open(CATALOG_CALLER, self._one_era or MODERN)
        if self.cfg.scope == "per-caller":
            tg.start_soon(self._evict_idle)

    async def wait_ready(self, within: float) -> bool:
        catalog = self._catalog_session()
        if catalog is None:
            return False
        with anyio.move_on_after(within):
            await catalog.connected.wait()
        return self.is_ready()

    def is_ready(self) -> bool:
        catalog = self._catalog_session()
        ready = catalog is not None and catalog.session is not None
        METRICS.source_up.labels(source=self.name).set(1 if ready else 0)
        return ready

    def status(self) -> dict[str, Any]:
        catalog = self._catalog_session()
        return {
            "ready": self.is_ready(),
            "sessions": self.session_count,
            "callers": self.caller_count,
            "inflight": sum(s.busy for group in self._sessions.values() for s in group),
            "lastError": catalog.last_error if catalog else None,
        }

    async def stop(self) -> None:
        self._closing = True
        sessions = [s for group in self._sessions.values() for s in group]
        async with anyio.create_task_group() as tg:
            for session in sessions:
                tg.start_soon(session.close)
        self._sessions.clear()
        if self._relay_client is not None:
            await self._relay_client.aclose()

    def capabilities(self) -> types.ServerCapabilities:
        catalog = self._catalog_session()
        if catalog is not None and catalog.session is not None:
            caps = catalog.session.server_capabilities
            if caps is not None:
                return caps
        return types.ServerCapabilities()

    # -- notifications -----------------------------------------------------------

    async def _notification(self, session: UpstreamSession, message: types.ServerNotification) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            await self._on_change(self.name, "tools")
        elif isinstance(message, types.ResourceListChangedNotification):
            await self._on_change(self.name, "resources")
        elif isinstance(message, types.PromptListChangedNotification):
            await self._on_change(self.name, "prompts")
        elif isinstance(message, types.ResourceUpdatedNotification):
            await self._on_update(self.name, session.caller, message.params.uri)

    # -- operations ----------------------------------------------------------------

    def _upstream_meta(self, meta: Any, session: ClientSession, downstream: Downstream) -> dict[str, Any] | None:
        """The `_meta` sent upstream for `downstream`'s request.

        A handshake-era client bridged to a 2026-07-28 session gets the server's log messages as
        from a handshake server (which logs without a per-request opt-in), at the level it set.
        """
        modern = session.protocol_version in MODERN_PROTOCOL_VERSIONS
        kept = forwardable_meta(meta, modern)
        if modern and downstream.era == LEGACY:
            kept = {**(kept or {}), types.LOG_LEVEL_META_KEY: self.log_level_of(downstream.caller)}
        return kept

    async def _catalog(self, op: Any, what: str) -> Any:
        session = await self.session_for(CATALOG_CALLER)
        return await session.request(op, what=what)

    def on_list_page(self, kind: str, page: Any, index: int) -> None:
        """Public hook, called with every page of every catalog listing as the upstream sent it.

        `kind` is `tools`, `resources`, `resource_templates` or `prompts`; `index` 0 starts a new
        listing of that kind. Subclasses read list-level fields here (`ttl_ms`, `cache_scope`,
        `meta`); the default does nothing.
        """

    async def _paged(self, method: Any, attr: str, what: str) -> list[Any]:
        # Kept (with this signature) for subclasses that wrap `method`; prefer `on_list_page`.
        items: list[Any] = []

        async def walk(s: ClientSession) -> None:
            cursor: str | None = None
            for index in range(_MAX_PAGES):
                page = await method(s, types.PaginatedRequestParams(cursor=cursor) if cursor else None)
                self.on_list_page(attr, page, index)
                items.extend(getattr(page, attr))
                cursor = page.next_cursor
                if not cursor:
                    return

        await self._catalog(walk, what)
        return items

    async def list_tools(self) -> list[types.Tool]:
        if not self.capabilities().tools:
            return []
        return await self._paged(lambda s, p: s.list_tools(params=p), "tools", "tools/list")

    async def list_resources(self) -> list[types.Resource]:
        if not self.capabilities().resources:
            return []
        return await self._paged(lambda s, p: s.list_resources(params=p), "resources", "resources/list")

    async def list_resource_templates(self) -> list[types.ResourceTemplate]:
        if not self.capabilities().resources:
            return []
        return await self._paged(
            lambda s, p: s.list_resource_templates(params=p), "resource_templates", "resources/templates/list"
        )

    async def list_prompts(self) -> list[types.Prompt]:
        if not self.capabilities().prompts:
            return []
        return await self._paged(lambda s, p: s.list_prompts(params=p), "prompts", "prompts/list")

    async def call_tool(
        self, params: types.CallToolRequestParams, downstream: Downstream
    ) -> types.CallToolResult | types.InputRequiredResult:
        async def op(s: ClientSession, meta: dict[str, Any] | None) -> Any:
            return await s.call_tool(  # type: ignore[call-overload]
                params.name,
                params.arguments,
                progress_callback=downstream.progress,
                input_responses=params.input_responses,
                request_state=params.request_state,
                meta=meta,
                allow_input_required=True,
                allow_claimed=True,
            )

        what = f"tools/call {params.name!r}"
        return await self._interactive(op, params.meta, downstream, what, types.CallToolResult)

    async def read_resource(
        self, params: types.ReadResourceRequestParams, downstream: Downstream
    ) -> types.ReadResourceResult | types.InputRequiredResult:
        async def op(s: ClientSession, meta: dict[str, Any] | None) -> Any:
            return await s.read_resource(
                params.uri,
                input_responses=params.input_responses,
                request_state=params.request_state,
                meta=meta,  # type: ignore[arg-type]
                allow_input_required=True,
            )

        what = f"resources/read {params.uri!r}"
        return await self._interactive(op, params.meta, downstream, what, types.ReadResourceResult)

    async def get_prompt(
        self, params: types.GetPromptRequestParams, downstream: Downstream
    ) -> types.GetPromptResult | types.InputRequiredResult:
        async def op(s: ClientSession, meta: dict[str, Any] | None) -> Any:
            return await s.get_prompt(
                params.name,
                params.arguments,
                input_responses=params.input_responses,
                request_state=params.request_state,
                meta=meta,  # type: ignore[arg-type]
                allow_input_required=True,
            )

        what = f"prompts/get {params.name!r}"
        return await self._interactive(op, params.meta, downstream, what, types.GetPromptResult)

    async def _interactive(
        self,
        op: Callable[[ClientSession, dict[str, Any] | None], Awaitable[Any]],
        meta: Any,
        downstream: Downstream,
        what: str,
        result_type: type[R],
    ) -> R | types.InputRequiredResult:
        """Run one interactive request for `downstream` on its session; `op` gets the `_meta` to send upstream."""
        session = await self.session_for(downstream.caller, downstream.era)
        result = await session.request(lambda s: op(s, self._upstream_meta(meta, s, downstream)), downstream, what=what)
        assert isinstance(result, result_type | types.InputRequiredResult)
        return without_upstream_identity(result)

    async def complete(self, params: types.CompleteRequestParams, downstream: Downstream) -> types.CompleteResult:
        if not self.capabilities().completions:
            return await super().complete(params, downstream)
        session = await self.session_for(downstream.caller, downstream.era)

        async def op(s: ClientSession) -> types.CompleteResult:
            clean = params.model_copy(update={"meta": forwardable_meta(params.meta)})  # completions never log
            return await s.send_request(types.CompleteRequest(params=clean), types.CompleteResult)

        return await session.request(op, downstream, what="completion/complete")

    async def subscribe(self, uri: str, downstream: Downstream) -> None:
        session = await self.session_for(downstream.caller, downstream.era)
        await session.subscribe(uri)

    async def unsubscribe(self, uri: str, downstream: Downstream) -> None:
        session = await self.session_for(downstream.caller, downstream.era)
        await session.unsubscribe(uri)

    def log_level_of(self, caller: str) -> types.LoggingLevel:
        """The level a handshake-era caller set (`logging/setLevel`), sent per request to a 2026-07-28 upstream."""
        return self._levels.get(caller, "debug")

    async def set_level(self, level: types.LoggingLevel, downstream: Downstream) -> None:
        # Kept for this caller's requests on a 2026-07-28 session, which takes the level per request in `_meta`.
        self._levels[downstream.caller] = level
        self._levels.move_to_end(downstream.caller)
        while len(self._levels) > _MAX_REMEMBERED_LEVELS:
            self._levels.popitem(last=False)
        if not self.capabilities().logging:
            return
        session = await self.session_for(downstream.caller, downstream.era)
        if session.modern:
            return
        await session.request(
            lambda s: s.send_request(
                types.SetLevelRequest(params=types.SetLevelRequestParams(level=level)), types.EmptyResult
            ),
            downstream,
            what="logging/setLevel",
        )
