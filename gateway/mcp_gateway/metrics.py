"""Prometheus metrics (`mcp_gateway_*`), labelled by tenant, profile and tool.

Cardinality is bounded: tenants and profiles come from the routing config
(unknown ones are reported as `unknown`), and a tool label is only used for
tool names that were actually served; past `MAX_TOOLS` distinct tools per
profile the rest are counted as `other`.
"""

from __future__ import annotations

from typing import Any

from mcp_common.metrics import LATENCY_BUCKETS_SECONDS, Series
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from mcp_gateway.config import Profile, RoutingConfig

MAX_TOOLS = 200


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # Series: looked up on every request, so their children are cached (mcp_common.metrics).
        self.requests = Series(
            Counter(
                "mcp_gateway_requests_total", "MCP HTTP requests", ["tenant", "profile", "method", "status"], registry=r
            )
        )
        self.tool_calls = Series(
            Counter("mcp_gateway_tool_calls_total", "Tool calls", ["tenant", "profile", "tool", "outcome"], registry=r)
        )
        # reason: unavailable (never sent) | error | timeout (sent; idempotent tools only), see retry.py
        self.tool_call_retries = Series(
            Counter(
                "mcp_gateway_tool_call_retries_total",
                "Tool call attempts sent again after a failure",
                ["tenant", "profile", "upstream", "reason"],
                registry=r,
            )
        )
        # Against mcp_gateway_requests_total: connection churn from clients (or a proxy in front) to this replica.
        self.connections = Counter(
            "mcp_gateway_http_connections_total", "TCP connections accepted on the gateway's MCP port", registry=r
        )
        # kind: internal | store_unavailable | upstream_error | upstream_timeout | upstream_unavailable
        self.errors = Counter("mcp_gateway_errors_total", "Errors by kind", ["tenant", "profile", "kind"], registry=r)
        self.auth_failures = Counter(
            "mcp_gateway_auth_failures_total", "Rejected credentials", ["tenant", "profile", "status"], registry=r
        )
        self.limit_rejections = Counter(
            "mcp_gateway_limit_rejections_total",
            "Rate-limit and quota rejections",
            ["tenant", "profile", "kind"],
            registry=r,
        )
        # rule: a rule name from the profile's policy (bounded by config), or "(none)" when no allow
        # rule admitted the item; reason: deny | no_allow | error (rules.py). Never a caller label.
        self.policy_refusals = Series(
            Counter(
                "mcp_gateway_policy_refusals_total",
                "Calls, reads and gets refused by a policy rule (policy.rules)",
                ["tenant", "profile", "kind", "rule", "reason"],
                registry=r,
            )
        )
        self.relayed_calls = Series(
            Counter(
                "mcp_gateway_relayed_calls_total",
                "2026-07-28 tool calls relayed to their upstream without the SDK (passthrough.py)",
                ["tenant", "profile"],
                registry=r,
            )
        )
        self.upstream_latency = Series(
            Histogram(
                "mcp_gateway_upstream_latency_seconds",
                "Tool call latency through the upstream",
                ["tenant", "profile", "tool"],
                registry=r,
                buckets=LATENCY_BUCKETS_SECONDS,
            )
        )
        # meta: tools/list | search_tools | describe_tools | call_tool; outcome: ok | invalid (bad input)
        self.discovery = Series(
            Counter(
                "mcp_gateway_discovery_requests_total",
                "Requests answered or rewritten by tool discovery (discovery.mode search)",
                ["tenant", "profile", "meta", "outcome"],
                registry=r,
            )
        )
        # outcome: ok (a new token; cache hits are not counted) | refused | unavailable (token_exchange.py)
        self.token_exchanges = Counter(
            "mcp_gateway_token_exchanges_total",
            "Token exchanges (RFC 8693) made for upstreams on behalf of callers",
            ["tenant", "profile", "upstream", "outcome"],
            registry=r,
        )
        # Per-user connections (connections/): the event's outcome is ok or why it failed, e.g. for
        # connects: refused (the provider refused the code) | unavailable | no_refresh_token |
        # misconfigured (client secret missing); refreshes: refused (revoked or expired: the row is
        # deleted) | unavailable (the row is kept) | unreadable (its key left the key ring) | misconfigured.
        connection = ["tenant", "profile", "upstream"]
        self.connection_connects = Counter(
            "mcp_gateway_connection_connects_total",
            "Users' connect flows finished at a third-party provider (authorization code exchanged)",
            [*connection, "outcome"],
            registry=r,
        )
        self.connection_refreshes = Counter(
            "mcp_gateway_connection_refreshes_total",
            "Access tokens refreshed for users' connections (cached tokens are not counted)",
            [*connection, "outcome"],
            registry=r,
        )
        self.connection_links = Counter(
            "mcp_gateway_connection_links_total",
            "Calls answered with a link to connect (the caller had no usable connection)",
            connection,
            registry=r,
        )
        self.connection_revocations = Counter(
            "mcp_gateway_connection_revocations_total",
            "Connections revoked by their users in the console",
            connection,
            registry=r,
        )
        self.config_generation = Gauge("mcp_gateway_config_generation", "Routing config generation", registry=r)
        # One series per replica (the digest of the config it serves, shortened): replicas that
        # disagree for long mean one of them is stuck on an old routing config.
        self.config_info = Gauge(
            "mcp_gateway_config_info", "The routing config this replica serves (always 1)", ["digest"], registry=r
        )
        # Set on each readiness probe (/readyz): 0 while the state store (PostgreSQL) does not answer.
        self.store_up = Gauge(
            "mcp_gateway_store_up", "1 when the state store answered the last readiness probe", registry=r
        )
        # The configured tenant quotas, so that alerts can relate tool calls to them (the
        # per-caller quotas of profiles are not exported: a caller label would be unbounded).
        self.tenant_quota = Gauge(
            "mcp_gateway_tenant_quota_limit",
            "Tool calls a tenant may make per period (limits.quota of the tenant)",
            ["tenant", "period"],
            registry=r,
        )
        self.audit_pending = Gauge("mcp_gateway_audit_pending", "Audit records waiting to be stored", registry=r)
        self.notification_streams = Gauge(
            "mcp_gateway_notification_streams", "Open handshake-era session GET streams on this replica", registry=r
        )
        self.server_requests_waiting = Gauge(
            "mcp_gateway_server_requests_waiting",
            "Handshake-era requests on this replica that may be waiting for their client's answer to a server "
            "request (sampling, elicitation, roots)",
            registry=r,
        )
        upstream = ["tenant", "profile", "upstream"]
        self.upstream_health = Gauge(
            "mcp_gateway_upstream_health",
            "Upstream probe status (1 for the current state: healthy, unhealthy, unknown, unprobed)",
            [*upstream, "state"],
            registry=r,
        )
        self.health_transitions = Counter(
            "mcp_gateway_upstream_health_transitions_total",
            "Upstream probe status changes",
            [*upstream, "to"],
            registry=r,
        )
        self.upstream_circuit = Gauge(
            "mcp_gateway_upstream_circuit",
            "Upstream circuit breaker (1 for the current state: closed, open, half_open)",
            [*upstream, "state"],
            registry=r,
        )
        self.circuit_transitions = Counter(
            "mcp_gateway_upstream_circuit_transitions_total",
            "Circuit breaker state changes",
            [*upstream, "to"],
            registry=r,
        )
        # The health monitor (health.py) that owns each profile's upstream series now.
        self.health_owners: dict[str, Any] = {}
        self._tools: dict[str, set[str]] = {}

    def set_config(self, generation: int, digest: str, config: RoutingConfig) -> None:
        """Series that mirror the routing config: its generation, digest and the tenants' quotas."""
        self.config_generation.set(generation)
        self.config_info.clear()
        self.config_info.labels(digest[:12] or "none").set(1)
        self.tenant_quota.clear()  # a removed tenant or quota leaves no stale series
        for tenant in config.tenants:
            quota = tenant.limits.quota
            if quota is None:
                continue
            for period, limit in (("daily", quota.daily), ("monthly", quota.monthly)):
                if limit is not None:
                    self.tenant_quota.labels(tenant.id, period).set(limit)

    def connection_event(self, event: str, tenant: str, profile: str, upstream: str, outcome: str = "") -> None:
        """One connection event (connections/service.py `Connections.count`): connect, refresh, link, revoke."""
        if event == "link":
            self.connection_links.labels(tenant, profile, upstream).inc()
        elif event == "revoke":
            self.connection_revocations.labels(tenant, profile, upstream).inc()
        else:
            counter = self.connection_connects if event == "connect" else self.connection_refreshes
            counter.labels(tenant, profile, upstream, outcome).inc()

    def tool_label(self, profile: str, tool: str) -> str:
        seen = self._tools.setdefault(profile, set())
        if tool in seen:
            return tool
        if len(seen) >= MAX_TOOLS:
            return "other"
        seen.add(tool)
        return tool

    def error(self, profile: Profile | None, kind: str) -> None:
        """Count a request that failed on the gateway's side (`kind`: a fixed word, never client input)."""
        tenant, pid = (profile.tenant, profile.id) if profile else ("unknown", "unknown")
        self.errors.labels(tenant, pid, kind).inc()
