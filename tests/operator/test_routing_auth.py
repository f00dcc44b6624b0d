"""A Profile's `auth` (one method, or several with `methods`) reaches the gateway's routing
entry as written, and one the gateway would refuse leaves the profile out with the reason."""

from __future__ import annotations

from typing import Any

from mcp_gateway.config import RoutingConfig
from mcp_operator.routing import render
from mcp_operator.settings import parse

TENANT = {"metadata": {"name": "acme"}, "spec": {"namespaces": ["team"]}}
UPSTREAM = {"metadata": {"namespace": "team", "name": "tools"}, "spec": {"mcp": {"url": "http://x/mcp"}}}
OIDC = {
    "issuer": "https://login.example.com/realms/acme",
    "audience": "mcp-gateway",
    "jwksUrl": "https://login.example.com/realms/acme/protocol/openid-connect/certs",
    "identityClaims": {"subject": "preferred_username", "groups": "roles", "email": "mail"},
}


def profile(auth: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"namespace": "team", "name": "p"}, "spec": {"upstreams": [{"name": "tools"}], "auth": auth}}


def test_several_methods_are_rendered_for_the_gateway() -> None:
    auth = {"methods": ["apiKey", "oidc"], "oidc": OIDC}
    rendered = render([TENANT], [profile(auth)], [UPSTREAM], parse([]))
    assert rendered.document["profiles"][0]["auth"] == auth
    settings = RoutingConfig.model_validate(rendered.document).profiles[0].auth  # what the gateway reads
    assert settings.accepted == ("apiKey", "oidc")
    assert settings.oidc is not None and settings.oidc.identity_claims.subject == "preferred_username"


def test_auth_the_gateway_would_refuse_leaves_the_profile_out() -> None:
    rendered = render([TENANT], [profile({"methods": ["apiKey", "oidc"]})], [UPSTREAM], parse([]))
    assert rendered.document["profiles"] == []
    status = rendered.profiles[("team", "p")]
    assert status.ready.reason == "InvalidProfile" and "auth.oidc" in status.ready.message
