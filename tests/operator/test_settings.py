"""Operator flags that shape each adapter's NetworkPolicy: defaults and refusals."""

from __future__ import annotations

import pytest
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
