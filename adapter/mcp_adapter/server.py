"""The MCP endpoint: an `Aggregator` served at `/mcp` over streamable HTTP, both protocol eras.

`build_mcp_server(aggregator, runtime)` returns an SDK lowlevel `Server` whose
handlers delegate to the aggregator; the SDK's session manager picks the era
per request (handshake revisions with `initialize`/`Mcp-Session-Id`, or the
stateless 2026-07-28 envelope). `build_app(...)` adds `/healthz`, `/readyz`,
`/metrics` and `/map` around it.

Era bridging for interactive requests (tools/call, resources/read, prompts/get):
- handshake client, upstream asks via server request: relayed on the client's
  response stream (`LegacyDownstream`);
- handshake client, upstream answers `InputRequiredResult`: the adapter asks
  the client with server requests and retries the upstream with the answers;
- 2026-07-28 client, upstream asks via server request: the client receives an
  `InputRequiredResult` round (`Exchange`), its retry resumes the upstream call;
- 2026-07-28 client, upstream answers `InputRequiredResult`: passed through.

Sources serve each client through an upstream session of the client's own era
when the upstream speaks it (see `sources/mcp_source.py`), so the bridging
above is only needed for single-era upstreams. Either way an input request the
client did not declare the capability for fails the client's request with
-32021 and stops the upstream call; a client that cancels (or, in 2026-07-28,
drops its POST) cancels the upstream request too.

Subscriptions: handshake clients `resources/subscribe` (once per connection and
URI); 2026-07-28 clients open `subscriptions/listen`, whose resource URIs are
subscribed upstream for exactly the life of the stream. A URI the access policy hides is
refused in both (INVALID_PARAMS, as a read is); a listen URI no upstream serves is skipped.

Caller identity: the `X-MCP-Caller` request header when `Runtime.trust_caller_header`
is on (`server.trustCallerHeader`: the gateway sets the header, the operator sets
the flag on adapters it deploys), else `CURRENT_CALLER`, else the handshake
session id, else anonymous.

`build_app` puts `passthrough.PassThrough` directly in front of the SDK's
endpoint: a 2026-07-28 `tools/call` for a remote 2026-07-28 source is relayed
without decoding (same results, metrics, timeouts and interceptor), everything
else reaches the SDK. It puts `HttpGuard` (Host/Origin checks, header trimming) in front of
`/mcp` only: probes and scrapes reach `/healthz`, `/readyz`, `/metrics` by pod IP.
Behind the guard, `mcp_common.jsonrpc_errors.JsonRpcErrors` makes every error
`/mcp` answers a JSON-RPC error body that says what to fix (the SDK transport
answers a wrong Content-Type, Accept or body size with plain text or nothing).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.subscriptions import (
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
    ToolsListChanged,
)
from mcp_common import tracing
from mcp_common.jsonrpc_errors import JsonRpcErrors
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from mcp_adapter.aggregate import CURRENT_CALLER, Aggregator, UnknownToolError
from mcp_adapter.downstream import (
    EXCHANGE_PREFIX,
    LEGACY,
    MODERN,
    Downstream,
    Exchange,
    LegacyDownstream,
    NullDownstream,
    missing_capability,
)
from mcp_adapter.http_guard import GuardSettings, HttpGuard
from mcp_adapter.metrics import exposition
from mcp_adapter.passthrough import PassThrough
from mcp_adapter.session_relay import relay_on_session
from mcp_adapter.traced import TracedRequests

logger = logging.getLogger(__name__)

CALLER_HEADER = "x-mcp-caller"
MAX_REQUEST_BYTES = DEFAULT_MAX_REQUEST_BODY_SIZE
MAX_INPUT_ROUNDS = 10
EXCHANGE_POLL_SECONDS = 1.0
R = TypeVar("R")
Interactive = Callable[[Any, Downstream], Awaitable[Any]]


@dataclass
class CallerBus:
    """The listen streams of one caller: a bus the adapter publishes to, and how many streams are open."""

    bus: InMemorySubscriptionBus
    handler: ListenHandler
    streams: int = 0


@dataclass
class Runtime:
    """Per-process state the handlers share: background tasks, exchanges, subscribers.

    Every per-caller or per-connection entry here is dropped when what it serves ends: a caller's
    bus with its last listen stream, a handshake connection's entries when the connection closes
    (its `exit_stack`), an exchange when its client took the outcome or the round timed out.

    `trust_caller_header`: take the caller identity from the `X-MCP-Caller` request header (only
    when a trusted proxy, the gateway, sets it and no client can reach the adapter directly).
    """

    aggregator: Aggregator
    round_timeout: float = 300.0
    trust_caller_header: bool = False
    tg: anyio.abc.TaskGroup | None = None
    exchanges: dict[str, Exchange] = field(default_factory=dict)
    legacy_connections: dict[int, Any] = field(default_factory=dict)
    subscribers: dict[str, dict[int, tuple[str, Any]]] = field(default_factory=dict)
    buses: dict[str, CallerBus] = field(default_factory=dict)

    @contextlib.contextmanager
    def listening(self, caller: str) -> Iterator[ListenHandler]:
        """The caller's listen handler for the life of one stream; the caller's bus goes with its last stream."""
        entry = self.buses.get(caller)
        if entry is None:
            bus = InMemorySubscriptionBus()
            entry = self.buses[caller] = CallerBus(bus, ListenHandler(bus))
        entry.streams += 1
        try:
            yield entry.handler
        finally:
            entry.streams -= 1
            if entry.streams == 0 and self.buses.get(caller) is entry:
                del self.buses[caller]

    def caller(self, ctx: ServerRequestContext[Any, Any]) -> str:
        return caller_of(ctx, trust_header=self.trust_caller_header)


class AdapterServer(Server[Any]):
    """Advertises list_changed for tools, resources and prompts: the catalog can change at run time."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options
            or NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True),
            experimental_capabilities,
            extensions,
        )


def caller_of(ctx: ServerRequestContext[Any, Any], *, trust_header: bool = False) -> str:
    """Who is calling: the `X-MCP-Caller` header (only when trusted), `CURRENT_CALLER`, the handshake session, or ""."""
    request = ctx.request
    headers = getattr(request, "headers", None)
    if trust_header and headers is not None and (value := headers.get(CALLER_HEADER)):
        return str(value)
    if value := CURRENT_CALLER.get():
        return value
    if headers is not None and (sid := headers.get("mcp-session-id")):
        return f"session:{sid}"
    return ""


CLIENT_ERA_HEADER = "x-mcp-client-era"


def client_era(ctx: ServerRequestContext[Any, Any], runtime: Runtime) -> str:
    """The era of the client behind a 2026-07-28 request: a trusted gateway says when it relays a
    handshake-era client's call as 2026-07-28, so per-caller sources serve it from that era's session."""
    headers = getattr(ctx.request, "headers", None)
    claimed = headers.get(CLIENT_ERA_HEADER) if runtime.trust_caller_header and headers is not None else None
    return LEGACY if claimed in HANDSHAKE_PROTOCOL_VERSIONS else MODERN


def is_modern(ctx: ServerRequestContext[Any, Any]) -> bool:
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


def _remember(runtime: Runtime, ctx: ServerRequestContext[Any, Any]) -> None:
    """Keep a handshake connection for list_changed notifications until it closes."""
    if not is_modern(ctx):
        connection = ctx.session._connection  # the handshake connection's standalone channel
        key = id(connection)
        if key not in runtime.legacy_connections:
            runtime.legacy_connections[key] = connection
            connection.exit_stack.callback(runtime.legacy_connections.pop, key, None)


async def _interactive(runtime: Runtime, ctx: ServerRequestContext[Any, Any], params: Any, op: Interactive) -> Any:
    """Serve an interactive request, bridging server requests and input-required rounds between eras."""
    caller = runtime.caller(ctx)
    _remember(runtime, ctx)
    if not is_modern(ctx):
        downstream = LegacyDownstream(ctx, caller)
        result = await _guarded(downstream, op, params)
        for _ in range(MAX_INPUT_ROUNDS):
            if not isinstance(result, types.InputRequiredResult):
                return result
            responses: dict[str, Any] = {}
            for key, request in (result.input_requests or {}).items():
                answer = await downstream.server_request(request)
                if downstream.failure is not None:
                    raise downstream.failure
                if isinstance(answer, types.ErrorData):
                    raise MCPError.from_error_data(answer)
                responses[key] = answer
            params = params.model_copy(update={"input_responses": responses, "request_state": result.request_state})
            result = await _guarded(downstream, op, params)
        raise MCPError(
            code=types.INTERNAL_ERROR, message=f"upstream asked for input more than {MAX_INPUT_ROUNDS} times"
        )

    state = getattr(params, "request_state", None)
    if state and state.startswith(EXCHANGE_PREFIX):
        exchange = runtime.exchanges.get(state)
        if exchange is None or exchange.caller != caller:
            raise MCPError(
                code=types.INVALID_PARAMS,
                message="requestState is unknown or expired; send the original request again without it",
            )
        exchange.ctx = ctx
        exchange.answer(dict(params.input_responses or {}))
    else:
        exchange = Exchange(caller, ctx, answer_timeout=runtime.round_timeout, era=client_era(ctx, runtime))
        runtime.exchanges[exchange.token] = exchange
        assert runtime.tg is not None
        runtime.tg.start_soon(_run_exchange, runtime, exchange, params, op)
    try:
        result = await exchange.next_round(runtime.round_timeout)
    except BaseException:
        # The client cancelled (or the round failed) while the upstream was working: stop the upstream call too.
        exchange.cancel()
        runtime.exchanges.pop(exchange.token, None)
        raise
    if isinstance(result, types.InputRequiredResult) and result.request_state == exchange.token:
        return result
    runtime.exchanges.pop(exchange.token, None)
    exchange.close()
    if isinstance(result, types.InputRequiredResult):
        _check_capabilities(result, ctx)
    return result


async def _guarded(downstream: LegacyDownstream, op: Interactive, params: Any) -> Any:
    """Run `op`; an input request the client cannot answer fails the request with -32021."""
    with anyio.CancelScope() as scope:
        downstream.scope = scope
        result = await op(params, downstream)
    if downstream.failure is not None:
        raise downstream.failure
    return result


def _check_capabilities(result: types.InputRequiredResult, ctx: ServerRequestContext[Any, Any]) -> None:
    """An upstream's input rounds must not ask a 2026-07-28 client for what it did not declare."""
    for request in (result.input_requests or {}).values():
        refused = missing_capability(request, ctx.session.client_capabilities)
        if refused is not None:
            raise refused


async def _run_exchange(runtime: Runtime, exchange: Exchange, params: Any, op: Interactive) -> None:
    await exchange.run(lambda: op(params, exchange))
    # Kept only while its client may still come for the outcome: a waiting client takes it at once
    # (and forgets the exchange); an abandoned one lapses after one more round's time. A fixed wait
    # would hold every call's state (~25 KB) for the whole round timeout.
    with anyio.move_on_after(runtime.round_timeout):
        await anyio.lowlevel.checkpoint()  # let the waiting client take the outcome first
        while exchange.token in runtime.exchanges:  # noqa: ASYNC110 - several code paths forget an exchange
            await anyio.sleep(EXCHANGE_POLL_SECONDS)
    runtime.exchanges.pop(exchange.token, None)


def build_mcp_server(
    runtime: Runtime,
    *,
    name: str = "mcp-adapter",
    version: str = "0.1.0",
    instructions: str | None = None,
    unknown_tool_as_result: bool = False,
) -> Server[Any]:
    """The lowlevel server over `runtime.aggregator`.

    `unknown_tool_as_result`: answer a call to an unknown tool with an `isError` tool result (what SDK
    servers do, so the model reads the message and corrects itself) instead of a -32602 protocol error.
    """
    agg = runtime.aggregator

    async def list_tools(ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None) -> Any:
        _remember(runtime, ctx)
        return await agg.list_tools(params.cursor if params else None)

    async def call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> Any:
        try:
            with tracing.within(getattr(ctx.request, "headers", None)):
                return await _interactive(runtime, ctx, params, agg.call_tool)
        except UnknownToolError as exc:
            if not unknown_tool_as_result:
                raise
            return types.CallToolResult(content=[types.TextContent(type="text", text=exc.error.message)], is_error=True)

    def tool_input_schema(name: str) -> dict[str, Any] | None:
        # Without this lookup the SDK re-lists every tool page on each tools/call to check
        # `Mcp-Param-*` headers: O(catalog) work per call. Hidden tools skip the check.
        entry = agg.catalog.tools.get(name)
        if entry is None or not agg.policy.allows_tool(name):
            return None
        return entry[1].input_schema

    async def list_resources(ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None) -> Any:
        _remember(runtime, ctx)
        return await agg.list_resources(params.cursor if params else None)

    async def list_templates(ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None) -> Any:
        return await agg.list_resource_templates(params.cursor if params else None)

    async def read_resource(ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams) -> Any:
        return await _interactive(runtime, ctx, params, agg.read_resource)

    async def subscribe(ctx: ServerRequestContext[Any, Any], params: types.SubscribeRequestParams) -> Any:
        caller = runtime.caller(ctx)
        connection = ctx.session._connection
        if id(connection) not in runtime.subscribers.get(params.uri, {}):  # subscribing twice is one subscription
            await agg.subscribe(params.uri, LegacyDownstream(ctx, caller))
            runtime.subscribers.setdefault(params.uri, {})[id(connection)] = (caller, connection)
            # A client that goes away without unsubscribing must not stay subscribed (upstream too).
            connection.exit_stack.push_async_callback(_forget_subscriber, runtime, params.uri, id(connection))
        return types.EmptyResult()

    async def unsubscribe(ctx: ServerRequestContext[Any, Any], params: types.UnsubscribeRequestParams) -> Any:
        await _forget_subscriber(runtime, params.uri, id(ctx.session._connection))
        return types.EmptyResult()

    async def listen(ctx: ServerRequestContext[Any, Any], params: types.SubscriptionsListenRequestParams) -> Any:
        """A 2026-07-28 listen stream: upstream subscriptions live exactly as long as the stream."""
        caller = runtime.caller(ctx)
        downstream = NullDownstream(caller, MODERN)
        uris = params.notifications.resource_subscriptions or []
        for uri in uris:  # refused as `resources/subscribe` (and a read) is; other URIs are skipped below
            agg.refuse_hidden_resource(uri)
        subscribed: list[str] = []
        try:
            for uri in uris:
                try:
                    await agg.subscribe(uri, downstream)
                    subscribed.append(uri)
                except MCPError as exc:
                    logger.info("upstream subscribe for %s skipped: %s", uri, exc.error.message)
            with runtime.listening(caller) as handler:
                return await handler(ctx, params)
        finally:
            with anyio.CancelScope(shield=True):
                for uri in subscribed:
                    with contextlib.suppress(MCPError):
                        await agg.unsubscribe(uri, downstream)

    async def list_prompts(ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None) -> Any:
        _remember(runtime, ctx)
        return await agg.list_prompts(params.cursor if params else None)

    async def get_prompt(ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams) -> Any:
        return await _interactive(runtime, ctx, params, agg.get_prompt)

    async def complete(ctx: ServerRequestContext[Any, Any], params: types.CompleteRequestParams) -> Any:
        return await agg.complete(params, NullDownstream(runtime.caller(ctx), MODERN if is_modern(ctx) else LEGACY))

    async def set_level(ctx: ServerRequestContext[Any, Any], params: types.SetLevelRequestParams) -> Any:
        await agg.set_level(params.level, LegacyDownstream(ctx, runtime.caller(ctx)))
        return types.EmptyResult()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        server = AdapterServer(
            name,
            version=version,
            instructions=instructions,
            on_list_tools=list_tools,
            on_call_tool=call_tool,
            get_tool_input_schema=tool_input_schema,
            on_list_resources=list_resources,
            on_list_resource_templates=list_templates,
            on_read_resource=read_resource,
            on_subscribe_resource=subscribe,
            on_unsubscribe_resource=unsubscribe,
            on_subscriptions_listen=listen,
            on_list_prompts=list_prompts,
            on_get_prompt=get_prompt,
            on_completion=complete,
            on_set_logging_level=set_level,
        )
    # Every client-facing error is an MCP error with a message; never a stack trace.
    _wire_listeners(runtime)
    return server


async def _forget_subscriber(runtime: Runtime, uri: str, connection_key: int) -> None:
    """Drop one connection's subscription to `uri` (and the upstream's, when it was the last)."""
    subscribers = runtime.subscribers.get(uri, {})
    entry = subscribers.pop(connection_key, None)
    if not subscribers:
        runtime.subscribers.pop(uri, None)
    if entry is not None:
        with contextlib.suppress(MCPError):
            await runtime.aggregator.unsubscribe(uri, NullDownstream(entry[0], LEGACY))


def _wire_listeners(runtime: Runtime) -> None:
    agg = runtime.aggregator

    async def changed(kind: str) -> None:
        event: ServerEvent
        if kind == "tools":
            event = ToolsListChanged()
        elif kind == "prompts":
            event = PromptsListChanged()
        else:
            event = ResourcesListChanged()
        for entry in list(runtime.buses.values()):
            await entry.bus.publish(event)
        for key, connection in list(runtime.legacy_connections.items()):
            sender = {
                "tools": connection.send_tool_list_changed,
                "prompts": connection.send_prompt_list_changed,
                "resources": connection.send_resource_list_changed,
            }[kind]
            try:
                await sender()
            except Exception:
                runtime.legacy_connections.pop(key, None)

    async def updated(source: str, caller: str, uri: str) -> None:
        shared = agg.sources[source].session_scope != "per-caller"
        for key, (sub_caller, connection) in list(runtime.subscribers.get(uri, {}).items()):
            if shared or sub_caller == caller:
                try:
                    await connection.send_resource_updated(uri)
                except Exception:
                    runtime.subscribers.get(uri, {}).pop(key, None)
        for bus_caller, entry in list(runtime.buses.items()):
            if shared or bus_caller == caller:
                await entry.bus.publish(ResourceUpdated(uri=uri))

    agg.on_change(changed)
    agg.on_resource_updated(updated)


def build_app(
    runtime: Runtime,
    server: Server[Any],
    *,
    lifespan_hook: Callable[[anyio.abc.TaskGroup], contextlib.AbstractAsyncContextManager[None]] | None = None,
    allowed_hosts: list[str] | None = None,
    extra_routes: list[Route] | None = None,
    guard: GuardSettings | None = None,
) -> Starlette:
    """The ASGI app: `/mcp` (behind the Host/Origin guard) plus health, readiness, metrics and map endpoints.

    `guard` defaults to loopback-only Host and Origin checks (or `allowed_hosts` when given).
    """
    guard = guard or GuardSettings.for_bind("127.0.0.1", allowed_hosts or [], [])
    manager = StreamableHTTPSessionManager(app=server, max_request_body_size=MAX_REQUEST_BYTES)
    passthrough = PassThrough(
        StreamableHTTPASGIApp(manager),
        runtime.aggregator,
        server.server_info_stamp,
        trust_caller_header=runtime.trust_caller_header,
        max_body_bytes=MAX_REQUEST_BYTES,
        session_relay=relay_on_session,
    )
    mcp_app: ASGIApp = HttpGuard(JsonRpcErrors(passthrough, max_body_bytes=MAX_REQUEST_BYTES), guard)
    if tracing.enabled():  # not even a wrapper when off
        mcp_app = TracedRequests(mcp_app, MAX_REQUEST_BYTES)
    agg = runtime.aggregator

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        states = agg.ready()
        required = {n: ok for n, ok in states.items() if getattr(agg.sources[n].config, "required", True)}
        ready = all(required.values())
        return JSONResponse({"ready": ready, "sources": states}, status_code=200 if ready else 503)

    async def metrics(request: Request) -> Response:
        return Response(exposition(), media_type="text/plain; version=0.0.4")

    async def map_view(request: Request) -> Response:
        return JSONResponse(agg.map())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            runtime.tg = tg
            if lifespan_hook is not None:
                async with lifespan_hook(tg), manager.run():
                    yield
            else:
                async with manager.run():
                    yield
            tg.cancel_scope.cancel()

    routes = [
        Route("/mcp", endpoint=mcp_app),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/map", map_view, methods=["GET"]),
        *(extra_routes or []),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
