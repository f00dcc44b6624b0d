"""An Upstream's healthCheck, circuitBreaker, retries and toolOverrides (and a Profile's
toolOverrides and retries) reach the gateway's routing entry (pure render)."""

from __future__ import annotations

from mcp_adapter.config import McpRemoteSource
from mcp_gateway import retry
from mcp_gateway.config import RoutingConfig
from mcp_operator.routing import render
from mcp_operator.settings import parse

TENANT = {"metadata": {"name": "acme"}, "spec": {"namespaces": ["team"]}}
PROFILE = {"metadata": {"namespace": "team", "name": "p"}, "spec": {"upstreams": [{"name": "tools"}]}}


def upstream(**spec: object) -> dict[str, object]:
    return {"metadata": {"namespace": "team", "name": "tools"}, "spec": {"mcp": {"url": "http://x/mcp"}, **spec}}


def test_health_settings_of_the_upstream_go_into_the_routing_entry() -> None:
    check = {"enabled": False, "intervalSeconds": 2, "hideToolsWhenUnhealthy": True}
    breaker = {"consecutiveFailures": 3, "openSeconds": 10}
    rendered = render([TENANT], [PROFILE], [upstream(healthCheck=check, circuitBreaker=breaker)], parse([]))
    entry = rendered.document["profiles"][0]["upstreams"][0]
    assert entry["healthCheck"] == check and entry["circuitBreaker"] == breaker
    config = RoutingConfig.model_validate(rendered.document)  # what the gateway does with it
    settings = config.profiles[0].upstreams[0]
    assert not settings.health_check.enabled and settings.health_check.hide_tools_when_unhealthy
    assert settings.circuit_breaker.consecutive_failures == 3


def test_without_health_settings_the_entry_is_as_before() -> None:
    entry = render([TENANT], [PROFILE], [upstream()], parse([])).document["profiles"][0]["upstreams"][0]
    assert "healthCheck" not in entry and "circuitBreaker" not in entry


def test_invalid_health_settings_leave_the_profile_out_with_a_reason() -> None:
    rendered = render([TENANT], [PROFILE], [upstream(healthCheck={"unhealthyThreshold": 0})], parse([]))
    assert rendered.document["profiles"] == []
    status = rendered.profiles[("team", "p")]
    assert status.ready.reason == "InvalidProfile" and "unhealthyThreshold" in status.ready.message


def test_tool_overrides_of_the_upstream_and_the_profile_are_merged_profile_first() -> None:
    profile = {
        "metadata": {"namespace": "team", "name": "p"},
        "spec": {"upstreams": [{"name": "tools", "toolOverrides": {"echo": {"name": "say"}}}]},
    }
    shared = {"echo": {"name": "repeat"}, "add": {"fixedArguments": {"b": 1}}}
    rendered = render([TENANT], [profile], [upstream(toolOverrides=shared)], parse([]))
    entry = rendered.document["profiles"][0]["upstreams"][0]
    assert entry["toolOverrides"] == {"echo": {"name": "say"}, "add": {"fixedArguments": {"b": 1}}}
    config = RoutingConfig.model_validate(rendered.document)
    assert config.profiles[0].upstreams[0].tool_overrides["echo"].name == "say"


def test_a_rename_collision_leaves_the_profile_out_naming_both_tools() -> None:
    clash = {"echo": {"name": "x"}, "add": {"name": "x"}}
    rendered = render([TENANT], [PROFILE], [upstream(toolOverrides=clash)], parse([]))
    assert rendered.document["profiles"] == []
    message = rendered.profiles[("team", "p")].ready.message
    assert "'echo'" in message and "'add'" in message


def test_retries_of_the_upstream_apply_to_every_profile_under_the_profiles_own() -> None:
    """Field by field: a Profile's upstreams[].retries over the Upstream's spec.retries over the Profile's
    spec.retries over the defaults."""
    profile = {
        "metadata": {"namespace": "team", "name": "p"},
        "spec": {"retries": {"jitter": 0, "attempts": 5}, "upstreams": [{"name": "tools", "retries": {"attempts": 2}}]},
    }
    other = {"metadata": {"namespace": "team", "name": "q"}, "spec": {"upstreams": [{"name": "tools"}]}}
    shared = {"attempts": 4, "backoffBaseSeconds": 0.05, "retryOn": ["unavailable"]}
    rendered = render([TENANT], [profile, other], [upstream(retries=shared)], parse([]))
    entries = {p["id"]: p["upstreams"][0] for p in rendered.document["profiles"]}
    assert entries["p"]["retries"] == {"attempts": 2, "backoffBaseSeconds": 0.05, "retryOn": ["unavailable"]}
    assert entries["q"]["retries"] == shared
    config = {p.id: p for p in RoutingConfig.model_validate(rendered.document).profiles}
    mine = retry.effective(config["p"].retries, config["p"].upstreams[0].retries)
    assert (mine.attempts, mine.backoff_base_seconds, mine.jitter, mine.retry_on) == (2, 0.05, 0, ("unavailable",))
    theirs = retry.effective(config["q"].retries, config["q"].upstreams[0].retries)
    assert (theirs.attempts, theirs.backoff_max_seconds) == (4, 2.0)


def test_invalid_retries_of_the_upstream_leave_the_profile_out_with_a_reason() -> None:
    rendered = render([TENANT], [PROFILE], [upstream(retries={"attempts": 0})], parse([]))
    assert rendered.document["profiles"] == []
    status = rendered.profiles[("team", "p")]
    assert status.ready.reason == "InvalidProfile" and "retries.attempts" in status.ready.message


def test_token_exchange_reaches_the_gateway_with_the_secret_by_reference() -> None:
    """spec.tokenExchange: the gateway gets the settings and a reference to the Secret key in the
    Upstream's namespace, never its value; an http source's auth.type exchanged needs no Secret."""
    from mcp_operator.adapter_config import build

    exchange = {
        "issuer": "https://id.example.com/realms/acme",
        "clientId": "mcp-gateway",
        "clientSecret": {"secretKeyRef": {"name": "orders-exchange", "key": "secret"}},
        "audience": "orders-api",
        "scopes": ["orders:read"],
    }
    tool = {"name": "my_orders", "url": "https://orders.example.com/orders"}
    api = upstream(tokenExchange=exchange)
    api["spec"] = {"tokenExchange": exchange, "http": {"tools": [tool], "auth": {"type": "exchanged"}}}
    rendered = render([TENANT], [PROFILE], [api], parse([]))
    entry = rendered.document["profiles"][0]["upstreams"][0]
    assert entry["tokenExchange"] == {
        **{k: v for k, v in exchange.items() if k != "clientSecret"},
        "clientSecretRef": {"namespace": "team", "name": "orders-exchange", "key": "secret"},
    }
    settings = RoutingConfig.model_validate(rendered.document).profiles[0].upstreams[0].token_exchange
    assert settings is not None and settings.client_secret_ref is not None
    assert (settings.audience, settings.client_secret_ref.name) == ("orders-api", "orders-exchange")
    adapter = build("tools", "team", api["spec"])
    assert adapter.config["sources"][0]["auth"] == {"type": "exchanged"} and adapter.env == []
    remote = build(
        "tools", "team", {"tokenExchange": exchange, "mcp": {"url": "https://x/mcp", "auth": {"type": "exchanged"}}}
    )
    assert remote.config["sources"][0]["auth"] == {"type": "exchanged"}
    McpRemoteSource.model_validate(remote.config["sources"][0])  # what the adapter accepts
