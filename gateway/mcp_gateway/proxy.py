"""A profile's MCP backend, built on the adapter's aggregation core.

Each upstream of a profile becomes a remote `mcp` source of an
`mcp_adapter.aggregate.Aggregator`; the adapter's lowlevel server serves the
merged surface. The gateway adds, through the core's hooks:
- access policy (read from the *current* routing config, so policy edits
  apply without rebuilding the backend);
- a tool-call interceptor: per-profile/per-tool timeouts, safe retries (retry.py),
  audit records and metrics.

No session lives in process memory: handshake-era sessions are the gateway's
signed `Mcp-Session-Id` tokens (see front.py/sessions.py), so any replica can
serve any session. 2026-07-28 requests go to the SDK's (stateless) entry;
handshake-era POSTs are served one transport per request with a back-channel
for server-to-client requests (backchannel.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import mcp_types as types
from mcp.server.caching import CacheHint
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from mcp_adapter.after_response import defer
from mcp_adapter.aggregate import AccessPolicy, Proceed, ToolCall, ToolResult, UnknownToolError
from mcp_adapter.config import FromEnv, McpRemoteSource
from mcp_adapter.downstream import Downstream
from mcp_adapter.server import Runtime, build_mcp_server
from mcp_common import tracing
from mcp_types import DEFAULT_NEGOTIATED_VERSION
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.types import Receive, Scope, Send

from mcp_gateway import errors, retry
from mcp_gateway.audit import render_arguments
from mcp_gateway.backchannel import serve_handshake
from mcp_gateway.caching import LIST_KINDS, LiveCacheHints, list_hint
from mcp_gateway.config import Profile, RetrySettings, Upstream, profile_timeouts
from mcp_gateway.connections.inject import prepare as prepare_connection
from mcp_gateway.connections.inject import with_bearer
from mcp_gateway.context import current_call
from mcp_gateway.handshake_relay import HandshakeRelay, takes_fast_path
from mcp_gateway.health import HealthAwareAggregator, HealthMonitor
from mcp_gateway.limits import LimitExceeded, LimitsUnavailable, limit_data
from mcp_gateway.overrides import ProfileSource, ToolOverrides
from mcp_gateway.passthrough import GatewayRelay, relayable
from mcp_gateway.policy import ProfilePolicy
from mcp_gateway.request_state import SealedRequestState, boundary_for
from mcp_gateway.rules import NOBODY, Kind
from mcp_gateway.store.base import AuditRecord
from mcp_gateway.token_exchange import upstream_hooks
from mcp_gateway.trace import UpstreamContextAuth, upstream_auth, upstream_headers

if TYPE_CHECKING:
    from mcp_gateway.runtime import Gateway

log = logging.getLogger("mcp_gateway.proxy")

STARTUP_WAIT_SECONDS = 5.0
UNKNOWN_NAME_CHARS = 128  # of a client's unknown tool name, kept in its audit record
# Stateless handshake connections end with their request; the adapter's registry of them
# (used for list_changed fan-out on long-lived sessions) is pruned so it cannot grow.
PRUNE_SECONDS = 30.0


def source_config(upstream: Upstream) -> McpRemoteSource:
    return McpRemoteSource.model_validate(
        {
            "type": "mcp",
            "name": upstream.name,
            "url": upstream.url,
            "prefixPolicy": upstream.prefix,
            "required": False,
            "timeoutSeconds": upstream.timeout_seconds,
            "headers": {h: FromEnv(fromEnv=env) for h, env in upstream.headers_from_env.items()},
        }
    )


class LivePolicy:
    """The profile's access policy as of the current routing config (one memoised object per version).

    A renamed tool (overrides.py) is judged under both its names by the globs. The profile's
    CEL rules (rules.py) judge each item for the request's caller (`current_call`), without
    arguments: the front judges a call with its arguments before it gets here.
    """

    def __init__(
        self,
        gateway: Gateway,
        profile_id: str,
        real_name: Callable[[str], str | None],
        upstream_of: Callable[[Kind, str], str] = lambda kind, name: "",
    ) -> None:
        self.gateway = gateway
        self.profile_id = profile_id
        self.real_name = real_name
        self.upstream_of = upstream_of

    def _policy(self) -> ProfilePolicy | None:
        profile = self.gateway.holder.config.profile(self.profile_id)
        return self.gateway.policies.of(profile) if profile else None

    def _rules_allow(self, policy: ProfilePolicy, kind: Kind, name: str) -> bool:
        if not policy.rules.applies_to(kind):
            return True
        ctx = current_call.get()
        # No request (a background refresh): judged as an anonymous caller, so claim rules fail closed.
        principal = ctx.principal if ctx else NOBODY
        return policy.rules.decide(kind, name, self.upstream_of(kind, name), principal).allowed

    def allows_tool(self, name: str) -> bool:
        policy = self._policy()
        if policy is None:
            return False
        real = self.real_name(name)
        if not (policy.allows_tool(name) if real is None else policy.allows_renamed_tool(name, real)):
            return False
        return self._rules_allow(policy, "tool", name)

    def allows_resource(self, uri: str) -> bool:
        policy = self._policy()
        return policy is not None and policy.allows_resource(uri) and self._rules_allow(policy, "resource", uri)

    def allows_prompt(self, name: str) -> bool:
        policy = self._policy()
        return policy is not None and policy.allows_prompt(name) and self._rules_allow(policy, "prompt", name)


class AuditedAggregator(HealthAwareAggregator):
    """The aggregator, reporting calls it refuses before the interceptor sees them.

    A call naming a tool the profile does not offer was admitted, and charged to quotas, by
    the front (which cannot know the catalog); auditing it too keeps the quota counters and the
    audit log (the console's tool-call chart) counting the same calls.
    """

    def __init__(self, *args: Any, on_unknown_tool: Callable[[ToolCall, str], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_unknown_tool = on_unknown_tool

    async def call_tool(
        self, params: types.CallToolRequestParams, downstream: Downstream, policy: AccessPolicy | None = None
    ) -> ToolResult:
        try:
            return await super().call_tool(params, downstream, policy)
        except UnknownToolError as exc:
            self.on_unknown_tool(ToolCall(downstream.caller, params.name, "", "", params.arguments), exc.error.message)
            raise


class ProfileBackend:
    def __init__(self, gateway: Gateway, profile: Profile) -> None:
        self.gateway = gateway
        self.profile_id = profile.id
        policy = LivePolicy(gateway, profile.id, self.real_tool_name, self.upstream_of)
        self.aggregator = AuditedAggregator(
            [], policy=policy, interceptor=self.intercept, on_unknown_tool=self._unknown_tool
        )
        # Probes, circuit breakers, hidden tools of unhealthy upstreams (health.py).
        self.health = self.aggregator.monitor = HealthMonitor(profile, gateway.metrics, self.aggregator.tools_changed)
        self.sources: list[ProfileSource] = []
        self.connections = {u.name: u.connection for u in profile.upstreams if u.connection is not None}
        for upstream in profile.upstreams:
            source = ProfileSource(
                source_config(upstream), self.aggregator.source_changed, self.aggregator.resource_updated
            )
            if upstream.tool_overrides:
                source.overrides = ToolOverrides(upstream.name, upstream.tool_overrides)
            source.bridges_client_era = upstream.send_caller_header
            source.http_auth = upstream_auth(upstream.send_caller_header)
            source.relay_headers = upstream_headers(upstream.send_caller_header)
            if upstream.token_exchange is not None:  # the caller's token exchanged for this upstream
                source.http_auth, source.relay_headers = upstream_hooks(upstream.name, upstream.send_caller_header)
            elif upstream.connection is not None:  # each caller's own token (connections/inject.py)
                source.relay_headers = with_bearer(source.relay_headers, upstream.name)
                source.http_auth = UpstreamContextAuth(source.relay_headers)
            self.aggregator.sources[source.name] = source
            self.sources.append(source)
        self.runtime = Runtime(self.aggregator)
        # An unknown tool is an `isError` result (as SDK servers answer), so a model reads and corrects it.
        self.server = build_mcp_server(self.runtime, name=f"mcp-gateway/{profile.id}", unknown_tool_as_result=True)
        # List hints follow the upstreams' own and the caller-dependence of the profile (caching.py).
        self.server.cache_hints = LiveCacheHints(self.list_cache_hint)
        # 2026-07-28 rounds: the upstream's requestState travels sealed and bound to this profile and caller.
        self.server.middleware.append(SealedRequestState(gateway.state_codec, profile.id, self._continuation))
        self.manager = StreamableHTTPSessionManager(app=self.server, stateless=True)
        # First-round 2026-07-28 tool calls skip the SDK on both sides (passthrough.py).
        self.relay = GatewayRelay(
            self.manager.handle_request,
            self.aggregator,
            self.intercept,
            self.server.server_info_stamp,
            boundary_for(gateway.state_codec, profile.id),
            gateway.metrics.relayed_calls.labels(profile.tenant, profile.id).inc,
        )
        # Handshake-era tool calls take the same relay, their input rounds asked on the POST's stream
        # (handshake_relay.py).
        self.handshake_relay = HandshakeRelay(
            self.aggregator,
            self.intercept,
            self.server.server_info_stamp,
            boundary_for(gateway.state_codec, profile.id),
            gateway.metrics.relayed_calls.labels(profile.tenant, profile.id).inc,
            self._serve_handshake,
            gateway.relay,
        )
        # Upstream list changes and resource updates also go to handshake sessions' GET streams.
        self.aggregator.on_change(self._list_changed)
        self.aggregator.on_resource_updated(self._resource_updated)
        self._tg: anyio.abc.TaskGroup | None = None
        self._lifespan_state: object = None

    def real_tool_name(self, name: str) -> str | None:
        """The upstream's own name of the exposed tool `name` when a tool override renamed it, else None."""
        route = self.aggregator.catalog.tool_routes.get(name)
        if route is None:
            return None
        source = self.aggregator.sources.get(route[0])
        overrides = getattr(source, "overrides", None)
        return overrides.real_name(route[1]) if isinstance(overrides, ToolOverrides) else None

    def upstream_of(self, kind: Kind, name: str) -> str:
        """The upstream serving a tool, prompt, resource or resource template ("" if none does)."""
        catalog = self.aggregator.catalog
        if kind == "tool":
            route = catalog.tool_routes.get(name)
            return route[0] if route else ""
        if kind == "prompt":
            route = catalog.prompt_routes.get(name)
            return route[0] if route else ""
        entry = catalog.resources.get(name)
        if entry is not None:
            return str(entry[0])
        return next((source for source, t in catalog.templates if t.uri_template == name), "")

    def list_cache_hint(self, method: str) -> CacheHint | None:
        kind = LIST_KINDS.get(method)
        if kind is None:
            return None  # reads and the rest carry the upstream's own hints, passed through
        config = self.gateway.holder.config
        hints = [source.hints.get(kind) for source in self.sources]
        return list_hint(config.profile(self.profile_id), hints, config.gateway.max_list_ttl_ms)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        version = _protocol_version(scope)
        ctx = current_call.get()
        if scope["method"] == "POST" and (version is None or version in HANDSHAKE_PROTOCOL_VERSIONS):
            if ctx is not None and takes_fast_path(ctx):
                await self.handshake_relay(scope, receive, send, ctx)
            else:
                await self._serve_handshake(scope, receive, send)
            return
        if scope["method"] == "POST" and relayable(ctx.message if ctx else None):
            await self.relay(scope, receive, send)
            return
        await self.manager.handle_request(scope, receive, send)

    async def _serve_handshake(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A handshake-era POST on the SDK path, with its back channel (backchannel.py)."""
        assert self._tg is not None
        ctx = current_call.get()
        version = _protocol_version(scope) or DEFAULT_NEGOTIATED_VERSION
        session = ctx.session if ctx else None
        await serve_handshake(
            self.server, self._lifespan_state, self._tg, self.gateway.relay, session, version, scope, receive, send
        )

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            self.runtime.tg = tg
            await self.aggregator.start(tg)
            await self.aggregator.wait_ready(STARTUP_WAIT_SECONDS)
            down = [name for name, ok in self.aggregator.ready().items() if not ok]
            if down:
                log.warning("profile %s: upstreams not connected yet: %s", self.profile_id, ", ".join(down))
            await self.aggregator.refresh(strict=False)
            tg.start_soon(self._prune)
            self.health.start(tg)
            try:
                async with self.manager.run(), self.server.lifespan(self.server) as state:
                    self._tg, self._lifespan_state = tg, state
                    yield
            finally:
                with anyio.CancelScope(shield=True):
                    await self.aggregator.stop()
                self.health.forget()
                tg.cancel_scope.cancel()

    async def _continuation(self, envelope: str) -> None:
        """Charge a replayed continuation (request_state.py); a refusal is the call's JSON-RPC error."""
        try:
            await self.gateway.settle_continuation(envelope)
        except LimitExceeded as exceeded:
            raise MCPError(code=errors.RATE_LIMITED, message=str(exceeded), data=limit_data(exceeded)) from None
        except LimitsUnavailable as unavailable:
            raise MCPError(code=errors.STORE_UNAVAILABLE, message=str(unavailable)) from None

    async def _list_changed(self, kind: str) -> None:
        self.gateway.streams.list_changed(self.profile_id, kind)

    async def _resource_updated(self, source: str, caller: str, uri: str) -> None:
        self.gateway.streams.resource_updated(self.profile_id, uri)

    async def _prune(self) -> None:
        while True:
            await anyio.sleep(PRUNE_SECONDS)
            self.runtime.legacy_connections.clear()

    # -- the tool-call interceptor ---------------------------------------------

    async def intercept(self, call: ToolCall, proceed: Proceed) -> ToolResult:
        ctx = current_call.get()
        config = ctx.config if ctx else self.gateway.holder.config
        profile = ctx.profile if ctx else config.profile(self.profile_id)
        if profile is None:
            raise MCPError(code=types.INVALID_REQUEST, message=f"profile {self.profile_id!r} no longer exists")
        caller = ctx.principal.caller if ctx else call.caller
        timeout, per_tool = profile_timeouts(config, profile)
        limit = per_tool.get(call.name, timeout)
        real = self.real_tool_name(call.name)
        if real is not None:  # a renamed tool: settings naming its upstream name apply too (overrides.py)
            limit = per_tool.get(call.name, per_tool.get(real, timeout))
        tracing.annotate(**{tracing.UPSTREAM: call.source})
        started = time.monotonic()
        outcome, error, trial = "ok", None, False
        try:
            connection = self.connections.get(call.source) if self.connections else None
            if connection is not None and ctx is not None:
                asked = await prepare_connection(self.gateway, ctx, call.source, connection)
                if asked is not None:  # no connection yet: the caller gets the link to connect (or declined it)
                    outcome = "input_required" if isinstance(asked, types.InputRequiredResult) else "tool_error"
                    return asked
            trial = self.health.admit(call.source)  # refused at once while the upstream's circuit is open
            result = await self._attempts(call, self.health.guard(call.source, proceed), limit, profile)
            if isinstance(result, types.CallToolResult) and result.is_error:
                outcome = "tool_error"
            elif isinstance(result, types.InputRequiredResult):
                outcome = "input_required"
            return result
        except MCPError as exc:
            outcome, error = _OUTCOMES.get(exc.code, "error"), exc.error.message
            if outcome == "timeout":
                self.health.timed_out(call.source, error)
            raise
        except BaseException as exc:
            outcome, error = "cancelled", type(exc).__name__
            raise
        finally:
            if trial:
                self.health.release(call.source)
            seconds = time.monotonic() - started
            defer(partial(self._record, profile, caller, call, outcome, error, seconds))

    async def _attempts(self, call: ToolCall, proceed: Proceed, limit: float | None, profile: Profile) -> ToolResult:
        # asyncio's own timeout, not anyio.fail_after: as cancellable, and far cheaper per call.
        deadline = time.monotonic() + limit if limit else None
        retries = 0
        while True:
            began = time.monotonic()
            try:
                async with asyncio.timeout(None if deadline is None else max(0.0, deadline - time.monotonic())):
                    return await proceed()
            except TimeoutError:
                raise MCPError(
                    code=errors.UPSTREAM_TIMEOUT,
                    message=f"tool {call.name!r} timed out after {limit:g} s (profile timeout; "
                    "raise limits.timeoutSeconds or limits.toolTimeouts to allow longer calls)",
                ) from None
            except MCPError as exc:
                # Settings and idempotence are looked up only once a call failed: none of it on the hot path.
                settings = retry.effective(profile.retries, self._upstream_retries(profile, call.source))
                idempotent = self._idempotent(profile, call.name)
                decision = retry.decide(settings, exc, time.monotonic() - began, retries, idempotent, deadline)
                if not decision.retry:
                    raise
                retries += 1
                self.gateway.metrics.tool_call_retries.labels(
                    profile.tenant, profile.id, call.source, decision.reason
                ).inc()
                log.info("retrying tool %s after %s (retry %d)", call.name, exc.error.message, retries)
                await anyio.sleep(decision.wait)

    @staticmethod
    def _upstream_retries(profile: Profile, source: str) -> RetrySettings | None:
        return next((u.retries for u in profile.upstreams if u.name == source), None)

    def _idempotent(self, profile: Profile, name: str) -> bool:
        """Safe to send twice: the profile says so (`idempotentTools`), or the tool's own annotations do."""
        policy = self.gateway.policies.of(profile)
        real = self.real_tool_name(name)  # a renamed tool: settings may name either (overrides.py)
        if policy.idempotent(name) or (real is not None and policy.idempotent(real)):
            return True
        entry = self.aggregator.catalog.tools.get(name)
        hints = entry[1].annotations if entry else None
        return bool(hints and (hints.read_only_hint or hints.idempotent_hint))

    def _unknown_tool(self, call: ToolCall, error: str) -> None:
        ctx = current_call.get()
        profile = ctx.profile if ctx else self.gateway.holder.config.profile(self.profile_id)
        if profile is None:
            return
        # Audit only: the name is the client's, not a label the metrics may carry. Bounded and
        # without NUL (which PostgreSQL text refuses: one such record would stall every flush).
        name = call.name.replace("\x00", "\ufffd")
        name = name if len(name) <= UNKNOWN_NAME_CHARS else name[:UNKNOWN_NAME_CHARS] + "…"
        shown = dataclasses.replace(call, name=name)
        caller = ctx.principal.caller if ctx else call.caller
        self._audit(profile, caller, shown, "unknown_tool", "no such tool on this profile", 0.0)

    def _record(
        self, profile: Profile, caller: str, call: ToolCall, outcome: str, error: str | None, seconds: float
    ) -> None:
        metrics = self.gateway.metrics
        tool = metrics.tool_label(profile.id, call.name)
        metrics.tool_calls.labels(profile.tenant, profile.id, tool, outcome).inc()
        if outcome in _ERROR_KINDS:
            metrics.error(profile, _ERROR_KINDS[outcome])
        metrics.upstream_latency.labels(profile.tenant, profile.id, tool).observe(seconds)
        self._audit(profile, caller, call, outcome, error, seconds)

    def _audit(
        self, profile: Profile, caller: str, call: ToolCall, outcome: str, error: str | None, seconds: float
    ) -> None:
        self.gateway.audit.record(
            AuditRecord(
                tenant=profile.tenant,
                profile=profile.id,
                caller=caller,
                tool=self.real_tool_name(call.name) or call.name,  # the upstream's own name of a renamed tool
                outcome=outcome,
                latency_ms=seconds * 1000,
                arguments=render_arguments(
                    call.arguments, profile.policy.audit_arguments, self.gateway.audit.arguments_key
                ),
                error=error,
                identity=_identity(),
            )
        )


def _identity() -> dict[str, Any] | None:
    """The caller's identity for the audit record (auth.Principal.identity), if there is one."""
    ctx = current_call.get()
    return dict(ctx.principal.identity) if ctx and ctx.principal.identity else None


_OUTCOMES = {errors.UPSTREAM_TIMEOUT: "timeout", errors.UPSTREAM_UNAVAILABLE: "circuit_open"}
_ERROR_KINDS = {"error": "upstream_error", "timeout": "upstream_timeout", "circuit_open": "upstream_unavailable"}


def _protocol_version(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key == b"mcp-protocol-version":
            return str(value.decode("latin-1"))
    return None


def build_backend(gateway: Gateway, profile: Profile) -> ProfileBackend:
    return ProfileBackend(gateway, profile)


__all__ = ["ProfileBackend", "build_backend", "source_config"]
