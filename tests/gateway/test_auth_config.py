"""`auth` of a profile in the routing config: one method (`mode`) or several (`methods`)."""

from __future__ import annotations

from typing import Any

import pytest
from mcp_gateway.config import RoutingConfig, dumps_json, parse_config

OIDC = {"issuer": "https://login.example.com/realms/a", "audience": "mcp-gateway", "jwksUrl": "https://x/jwks"}


def config(auth: dict[str, Any]) -> RoutingConfig:
    profile = {"id": "p", "tenant": "t", "upstreams": [{"name": "u", "url": "http://u/mcp"}], "auth": auth}
    return RoutingConfig.model_validate({"tenants": [{"id": "t"}], "profiles": [profile]})


@pytest.mark.parametrize(
    ("auth", "accepted"),
    [
        ({}, ("apiKey",)),
        ({"mode": "apiKey"}, ("apiKey",)),
        ({"mode": "oidc", "oidc": OIDC}, ("oidc",)),
        ({"mode": "none"}, ()),
        ({"methods": ["apiKey", "oidc"], "oidc": OIDC}, ("apiKey", "oidc")),
        ({"methods": ["oidc"], "oidc": OIDC}, ("oidc",)),
    ],
)
def test_accepted_methods(auth: dict[str, Any], accepted: tuple[str, ...]) -> None:
    parsed = config(auth)
    profile = parsed.profile("p")
    assert profile is not None and profile.auth.accepted == accepted
    # What the operator renders and the gateway reads back is the same profile.
    again = parse_config(dumps_json(parsed)).profile("p")
    assert again is not None and again.auth.accepted == accepted


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"mode": "apiKey", "methods": ["oidc"], "oidc": OIDC}, "both mode and methods"),
        ({"methods": ["apiKey", "oidc"]}, r"auth.oidc \(issuer, audience, jwksUrl\) is missing"),
        ({"methods": ["apiKey", "apiKey"]}, "names a method twice"),
        ({"methods": []}, "at least 1 item"),
        ({"methods": ["none"]}, "'apiKey' or 'oidc'"),
        ({"mode": "oidc", "oidc": {**OIDC, "identityClaims": {"groups": ""}}}, "identityClaims.groups"),
    ],
)
def test_bad_auth_is_refused_with_the_reason(auth: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config(auth)


def test_an_upstream_takes_one_caller_credential_not_two() -> None:
    upstream = {
        "name": "u",
        "url": "http://u/mcp",
        "tokenExchange": {
            "tokenEndpoint": "https://idp/token",
            "clientId": "gw",
            "clientSecretFile": "/s",
            "audience": "u",
        },
        "connection": {"issuer": "https://third.example.com", "clientId": "gw"},
    }
    profile = {"id": "p", "tenant": "t", "upstreams": [upstream]}
    with pytest.raises(ValueError, match="set tokenExchange or connection, not both"):
        RoutingConfig.model_validate({"tenants": [{"id": "t"}], "profiles": [profile]})
