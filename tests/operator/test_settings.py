"""Operator flags that shape each adapter's NetworkPolicy and the routing config: defaults and refusals."""

from __future__ import annotations

import pytest
from mcp_gateway.config import RoutingConfig
from mcp_operator import workload
from mcp_operator.adapter_config import AdapterInputs
from mcp_operator.routing import render
from mcp_operator.settings import parse


def test_adapter_clients_default_to_the_routing_and_lease_namespaces() -> None:
    settings = parse(["--routing-configmap", "gw-ns/routes", "--lease", "op-ns/lease"])
    assert settings.adapter_clients == [
        ("gw-ns", {"app.kubernetes.io/name": "mcp-gateway", "app.kubernetes.io/component": "gateway"}),
        ("op-ns", {"app.kubernetes.io/name": "mcp-gateway", "app.kubernetes.io/component": "operator"}),
    ]


def test_adapter_clients_follow_the_flags() -> None:
    settings = parse(
        [
            "--gateway-namespace", "edge",
            "--gateway-pod-selector", "app=gw, tier=front",
            "--operator-namespace", "ops",
            "--operator-pod-selector", "",
        ]
    )  # fmt: skip
    assert settings.adapter_clients == [("edge", {"app": "gw", "tier": "front"}), ("ops", {})]


@pytest.mark.parametrize("selector", ["app", "app!=gw", "=gw"])
def test_a_selector_that_is_not_key_value_pairs_is_refused(selector: str) -> None:
    with pytest.raises(SystemExit, match="--gateway-pod-selector must look like key=value"):
        parse(["--gateway-pod-selector", selector])


def test_gateway_settings_flag_goes_into_the_rendered_routing_config() -> None:
    settings = parse(["--gateway-settings", '{"allowPrivateJwks": true, "publicUrl": "https://mcp.example.com"}'])
    document = render([], [], [], settings).document
    assert document["gateway"] == {"allowPrivateJwks": True, "publicUrl": "https://mcp.example.com"}
    config = RoutingConfig.model_validate(document)  # what the gateway does with it
    assert config.gateway.allow_private_jwks and config.gateway.public_url == "https://mcp.example.com"
    assert "gateway" not in render([], [], [], parse([])).document


@pytest.mark.parametrize("value", ["[1]", "{nope", '{"allowPrivateJwkz": true}', '{"publicUrl": "ftp://x"}'])
def test_gateway_settings_the_gateway_would_refuse_are_refused(value: str) -> None:
    with pytest.raises(SystemExit, match="--gateway-settings"):
        parse(["--gateway-settings", value])


def test_adapter_tracing_flags_become_the_adapters_otel_variables() -> None:
    settings = parse(["--adapter-otlp-endpoint", "http://jaeger.obs:4318/", "--adapter-trace-sampling-ratio", "0.5"])
    upstream = {"metadata": {"name": "time", "namespace": "acme", "uid": "u-1"}, "spec": {}}
    deployment = workload.deployment(upstream, AdapterInputs(config={}), "digest", settings)
    env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger.obs:4318",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.5",
    }
    plain = workload.deployment(upstream, AdapterInputs(config={}), "digest", parse([]))
    assert plain["spec"]["template"]["spec"]["containers"][0]["env"] == []


@pytest.mark.parametrize("value", ["{}", "[1]", "[{}]", '[{"podSelectr": {}}]', "[nope"])
def test_adapter_metrics_peers_must_be_network_policy_peers(value: str) -> None:
    with pytest.raises(SystemExit, match="--adapter-metrics-from"):
        parse(["--adapter-metrics-from", value])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--adapter-otlp-endpoint", "jaeger:4318"], "must be an http:// or https:// URL"),
        (["--adapter-trace-sampling-ratio", "1.5"], "between 0 and 1"),
    ],
)
def test_bad_adapter_tracing_flags_are_refused(flags: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        parse(flags)
