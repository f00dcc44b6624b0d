"""Upstream health: active MCP-level probes, circuit breakers, and what clients see.

Each upstream of a profile's backend is probed every `healthCheck.intervalSeconds`
with a fresh MCP client, the way a client would find it: `server/discover` (a
2026-07-28 upstream answers it, and that is the probe), else `initialize` then
`ping` (a handshake-era upstream). An HTTP GET would say nothing about whether
MCP works. The status changes only after `healthyThreshold` /
`unhealthyThreshold` probe results in a row (hysteresis: one lost probe does
not flap it). An upstream with `healthCheck.enabled: false` (one that answers
only with a user's own credentials must never be probed as the gateway) is
`unprobed`.

While an upstream is unhealthy its circuit breaker (breaker.py) is held open:
its tool calls fail at once with `UPSTREAM_UNAVAILABLE` naming the upstream and
when it is tried again; with `healthCheck.hideToolsWhenUnhealthy` its tools also
leave `tools/list` and open sessions get `notifications/tools/list_changed`
(again when it recovers). The profile's other upstreams are untouched.

Health lives per replica and per profile backend (each replica probes on its own).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import anyio
import anyio.abc
import httpx2
import mcp_types as types
from mcp.client._probe import negotiate_auto
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_adapter.aggregate import AccessPolicy, Aggregator, Proceed, ToolResult
from mcp_adapter.upstream import UNAVAILABLE
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcp_gateway import errors
from mcp_gateway.breaker import Breaker, Refusal, State
from mcp_gateway.config import Profile, Upstream
from mcp_gateway.metrics import Metrics

log = logging.getLogger("mcp_gateway.health")

# Errors that mean the upstream did not answer properly (breaker failures); any other answer is a success.
FAILURE_CODES = frozenset(
    {
        UNAVAILABLE,
        errors.UPSTREAM_ERROR,
        errors.UPSTREAM_TIMEOUT,
        types.INTERNAL_ERROR,
        types.REQUEST_TIMEOUT,
        types.CONNECTION_CLOSED,
    }
)


class Status(StrEnum):
    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    UNPROBED = "unprobed"


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every probe's fresh client: building one reads the CA bundle, some 15 ms of CPU,
    which every probe of every upstream paid again (the gateway's busiest background work)."""
    return httpx2.create_ssl_context()


async def probe(url: str, headers: dict[str, str], within: float) -> str:
    """One MCP-level probe; returns the negotiated protocol version, raises when the upstream fails it."""
    with anyio.fail_after(within):
        async with (
            httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(within), verify=_tls()) as http,
            streamable_http_client(url, http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session_probe(session)
            return str(session.protocol_version)


async def session_probe(session: ClientSession) -> None:
    await negotiate_auto(session)  # a 2026-07-28 upstream's `server/discover` answer is the probe
    if session.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        await session.send_ping()


def describe(exc: BaseException) -> str:
    """A one-line cause, innermost first out of anyio's exception groups; never a traceback."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, MCPError):
        return f"MCP error {exc.code}: {exc.error.message}"[:300]
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text.splitlines()[0]}"[:300]


@dataclass
class UpstreamHealth:
    """One upstream's probe status and breaker."""

    name: str
    settings: Upstream
    breaker: Breaker
    status: Status = Status.UNKNOWN
    since: datetime = field(default_factory=lambda: datetime.now(UTC))
    successes: int = 0  # consecutive probe results of one kind
    failures: int = 0
    probes: int = 0
    last_error: str | None = None
    last_probe: datetime | None = None
    next_probe: float = 0.0  # monotonic

    def observe(self, error: str | None) -> bool:
        """Count one probe result; True when the status changed (after the threshold in a row)."""
        check = self.settings.health_check
        self.probes += 1
        self.last_probe = datetime.now(UTC)
        if error is None:
            self.successes, self.failures = self.successes + 1, 0
            if self.status is not Status.HEALTHY and (
                self.status is Status.UNKNOWN or self.successes >= check.healthy_threshold
            ):
                return self._become(Status.HEALTHY)
        else:
            self.last_error = error
            self.successes, self.failures = 0, self.failures + 1
            if self.status is not Status.UNHEALTHY and self.failures >= check.unhealthy_threshold:
                return self._become(Status.UNHEALTHY)
        return False

    def _become(self, status: Status) -> bool:
        self.status, self.since = status, datetime.now(UTC)
        return True

    def detail(self, *, errors: bool) -> dict[str, Any]:
        report: dict[str, Any] = {
            "health": self.status.value,
            "since": self.since.isoformat(timespec="seconds"),
            "circuit": self.breaker.state.value,
            "probes": self.probes,
            "consecutiveFailures": self.failures,
            "lastProbe": self.last_probe.isoformat(timespec="seconds") if self.last_probe else None,
        }
        if errors:
            report.update(lastError=self.last_error, circuitReason=self.breaker.reason or None)
        return report


class HealthMonitor:
    """Probes, breakers and tool visibility for one profile backend's upstreams."""

    def __init__(self, profile: Profile, metrics: Metrics, tools_changed: Callable[[], Awaitable[None]]) -> None:
        self.profile = profile
        self.metrics = metrics
        self._tools_changed = tools_changed
        self.upstreams: dict[str, UpstreamHealth] = {}
        for upstream in profile.upstreams:
            breaker = Breaker(upstream.circuit_breaker, self._circuit_moved(upstream.name))
            health = UpstreamHealth(upstream.name, upstream, breaker)
            if not upstream.health_check.enabled:
                health.status = Status.UNPROBED
            self.upstreams[upstream.name] = health

    # -- probing -----------------------------------------------------------------

    def start(self, tg: anyio.abc.TaskGroup) -> None:
        # The profile's series are this monitor's now; a replaced backend's monitor must not remove them.
        owners = self.metrics.health_owners
        previous, owners[self.profile.id] = owners.get(self.profile.id), self
        if previous is not None:
            same_tenant = previous.profile.tenant == self.profile.tenant
            previous._remove_series(previous.upstreams.keys() - (self.upstreams.keys() if same_tenant else set()))
        for health in self.upstreams.values():
            self._export(health)
        for health in self.upstreams.values():
            if health.status is not Status.UNPROBED:
                tg.start_soon(self._watch, health)

    async def _watch(self, health: UpstreamHealth) -> None:
        check = health.settings.health_check
        headers = {h: os.environ[env] for h, env in health.settings.headers_from_env.items() if env in os.environ}
        while True:
            health.next_probe = time.monotonic() + check.interval_seconds
            error: str | None = None
            try:
                await probe(health.settings.url, headers, check.timeout_seconds)
            except Exception as exc:
                error = describe(exc)
            await self._observe(health, error)
            await anyio.sleep(max(0.0, health.next_probe - time.monotonic()))

    async def _observe(self, health: UpstreamHealth, error: str | None) -> None:
        before = health.status
        if not health.observe(error):
            return
        self.metrics.health_transitions.labels(self.profile.tenant, self.profile.id, health.name, health.status).inc()
        self._export(health)
        if health.status is Status.UNHEALTHY:
            log.warning(
                "upstream %s of profile %s is unhealthy after %d failed probes: %s",
                health.name,
                self.profile.id,
                health.failures,
                error,
            )
            health.breaker.hold(f"its health check failed {health.failures} times in a row ({error})")
        else:
            if before is Status.UNHEALTHY:
                log.warning("upstream %s of profile %s is healthy again", health.name, self.profile.id)
            health.breaker.release()
        if health.settings.health_check.hide_tools_when_unhealthy and Status.UNHEALTHY in (before, health.status):
            await self._tools_changed()

    def hidden(self) -> set[str]:
        """Upstreams whose tools are left out of tools/list now."""
        return {
            name
            for name, h in self.upstreams.items()
            if h.status is Status.UNHEALTHY and h.settings.health_check.hide_tools_when_unhealthy
        }

    # -- calls ---------------------------------------------------------------------

    def admit(self, upstream: str) -> bool:
        """Raise the caller's JSON-RPC error when the upstream's circuit is open; True for a half-open trial
        call (pass it to `release` when the call ends)."""
        health = self.upstreams.get(upstream)
        if health is None:
            return False
        refusal = health.breaker.admit()
        if refusal is not None:
            raise self._refused(health, refusal)
        return health.breaker.state is State.HALF_OPEN

    def guard(self, upstream: str, proceed: Proceed) -> Proceed:
        """`proceed` with each attempt's outcome recorded by the upstream's breaker."""
        health = self.upstreams.get(upstream)
        if health is None:
            return proceed
        breaker = health.breaker

        async def recorded() -> ToolResult:
            try:
                result = await proceed()
            except MCPError as exc:
                breaker.record(exc.code in FAILURE_CODES, exc.error.message[:200])
                raise
            except Exception as exc:
                breaker.record(True, describe(exc))
                raise
            # Cancelled (also by the profile's timeout: `timed_out` records that): nothing to record.
            breaker.record(False)
            return result

        return recorded

    def timed_out(self, upstream: str, detail: str) -> None:
        """A call hit the profile's timeout (outside `guard`, which sees only its cancellation): a failure."""
        health = self.upstreams.get(upstream)
        if health is not None:
            health.breaker.record(True, detail[:200])

    def release(self, upstream: str) -> None:
        """A trial call ended: free the half-open trial slot if no attempt of it recorded an outcome."""
        health = self.upstreams.get(upstream)
        if health is not None:
            health.breaker.end_trial()

    def _refused(self, health: UpstreamHealth, refusal: Refusal) -> MCPError:
        data: dict[str, Any] = {"upstream": health.name, "circuit": health.breaker.state.value}
        if refusal.retry_in is None:
            when = f"it is tried again once its health check passes (next probe in {self._next_probe(health):.0f} s)"
            data["retryAfterSeconds"] = round(self._next_probe(health), 1)
        else:
            at = datetime.now(UTC) + timedelta(seconds=refusal.retry_in)
            when = f"it will be retried at {at.isoformat(timespec='seconds')} (in {refusal.retry_in:.0f} s)"
            data.update(retryAfterSeconds=round(refusal.retry_in, 1), retryAt=at.isoformat(timespec="seconds"))
        return MCPError(
            code=errors.UPSTREAM_UNAVAILABLE,
            message=f"upstream {health.name!r} is unavailable: its circuit is open because {refusal.reason}; {when}. "
            "The profile's other upstreams are not affected.",
            data=data,
        )

    @staticmethod
    def _next_probe(health: UpstreamHealth) -> float:
        return max(0.0, health.next_probe - time.monotonic())

    # -- reporting -----------------------------------------------------------------

    def detail(self, *, errors: bool) -> dict[str, Any]:
        return {name: health.detail(errors=errors) for name, health in self.upstreams.items()}

    def _circuit_moved(self, upstream: str) -> Callable[[State, str], None]:
        def moved(state: State, reason: str) -> None:
            profile = self.profile
            self.metrics.circuit_transitions.labels(profile.tenant, profile.id, upstream, state.value).inc()
            health = self.upstreams.get(upstream)
            if health is not None:
                self._export(health)
            log.info("circuit of upstream %s (profile %s) is %s: %s", upstream, profile.id, state.value, reason)

        return moved

    def _export(self, health: UpstreamHealth) -> None:
        profile = self.profile
        for status in Status:
            value = 1 if health.status is status else 0
            self.metrics.upstream_health.labels(profile.tenant, profile.id, health.name, status.value).set(value)
        for state in State:
            value = 1 if health.breaker.state is state else 0
            self.metrics.upstream_circuit.labels(profile.tenant, profile.id, health.name, state.value).set(value)

    def forget(self) -> None:
        """Drop this backend's series when the profile is gone (not when a newer backend took them over)."""
        if self.metrics.health_owners.get(self.profile.id) is self:
            del self.metrics.health_owners[self.profile.id]
            self._remove_series(self.upstreams.keys())

    def _remove_series(self, names: Iterable[str]) -> None:
        profile = self.profile
        for name in names:
            for status in Status:
                _remove(self.metrics.upstream_health, profile.tenant, profile.id, name, status.value)
            for state in State:
                _remove(self.metrics.upstream_circuit, profile.tenant, profile.id, name, state.value)


def _remove(metric: Any, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)


class VisiblePolicy:
    """The profile's policy for listing, minus the tools of upstreams hidden while unhealthy."""

    def __init__(self, policy: AccessPolicy, aggregator: Aggregator, hidden: set[str]) -> None:
        self._policy = policy
        self._routes = aggregator.catalog.tool_routes
        self._hidden = hidden

    def allows_tool(self, name: str) -> bool:
        route = self._routes.get(name)
        return (route is None or route[0] not in self._hidden) and self._policy.allows_tool(name)

    def allows_resource(self, uri: str) -> bool:
        return self._policy.allows_resource(uri)

    def allows_prompt(self, name: str) -> bool:
        return self._policy.allows_prompt(name)


class HealthAwareAggregator(Aggregator):
    """The aggregator whose `tools/list` leaves out hidden upstreams' tools (calls still route, and are refused
    by the open circuit with a clear error rather than "unknown tool")."""

    monitor: HealthMonitor | None = None

    async def list_tools(self, cursor: str | None = None, policy: AccessPolicy | None = None) -> types.ListToolsResult:
        hidden = self.monitor.hidden() if self.monitor is not None else set()
        if hidden:
            policy = VisiblePolicy(policy or self.policy, self, hidden)
        return await super().list_tools(cursor, policy)

    async def tools_changed(self) -> None:
        """Tell every listener (handshake sessions, 2026-07-28 listen streams) that tools/list changed."""
        await self._changed("tools")
