"""The API server itself refuses invalid resources (CRD schemas and CEL rules),
with a message that says what to fix. No operator involved."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from tests.operator.support import Resources
from tests.support.kube import ControlPlane

ONE_OF = "set exactly one of spec.stdio, spec.mcp, spec.openapi or spec.http"
SECRET_REF = {"secretKeyRef": {"name": "s", "key": "k"}}
RULE = {"name": "r", "effect": "deny", "when": "true"}
EXCHANGE_WITHOUT_ENDPOINT = {"clientId": "gateway", "clientSecret": SECRET_REF, "audience": "orders-api"}
EXCHANGE = {**EXCHANGE_WITHOUT_ENDPOINT, "issuer": "https://id.example.com/realms/acme"}
CONNECTION = {"issuer": "https://login.crm.example.com", "clientId": "mcp-gateway", "clientSecret": SECRET_REF}


@pytest.fixture
def res(kube: ControlPlane) -> Iterator[Resources]:
    with kube.api_client() as api:
        yield Resources(api)


def refused(call: Any) -> str:
    with pytest.raises(ApiException) as info:
        call()
    assert info.value.status == 422, info.value.body
    return str(json.loads(info.value.body)["message"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"stdio": {"command": "x"}, "mcp": {"url": "http://a/mcp"}}, ONE_OF),
        ({"replicas": 1}, ONE_OF),
        ({"mcp": {"url": "ftp://example.com/mcp"}}, "spec.mcp.url"),
        ({"stdio": {"args": ["x"]}}, "spec.stdio.command: Required value"),
        (
            {"stdio": {"command": "x", "env": [{"name": "A", "value": "1", "valueFrom": SECRET_REF}]}},
            "each env entry needs exactly one of value or valueFrom",
        ),
        ({"openapi": {"spec": {}}}, "openapi.spec needs exactly one of url or configMapKeyRef"),
        (
            {"openapi": {"spec": {"url": "https://a/openapi.json"}, "auth": {"type": "apiKey", "secretName": "s"}}},
            "auth.type apiKey needs auth.apiKey.name",
        ),
        ({"mcp": {"url": "http://a/mcp"}, "scope": "everyone"}, 'supported values: "shared", "per-caller"'),
        (
            {"openapi": {"spec": {"url": "https://a/openapi.json"}, "allowedNetworks": ["10.0.0.0/8", "10.1.2.3"]}},
            "each allowedNetworks entry must be a CIDR range",
        ),
        (
            {"openapi": {"spec": {"url": "https://a/openapi.json"}, "allowedNetworks": ["10.0.0.0/33"]}},
            "each allowedNetworks entry must be a CIDR range",
        ),
        ({"mcp": {"url": "http://a/mcp"}, "healthCheck": {"unhealthyThreshold": 0}}, "healthCheck.unhealthyThreshold"),
        ({"mcp": {"url": "http://a/mcp"}, "circuitBreaker": {"errorRate": 1.5}}, "circuitBreaker.errorRate"),
        (
            {"mcp": {"url": "http://a/mcp"}, "tokenExchange": EXCHANGE_WITHOUT_ENDPOINT},
            "tokenExchange needs exactly one of tokenEndpoint and issuer",
        ),
        (
            {"openapi": {"spec": {"url": "https://a/openapi.json"}, "auth": {"type": "bearer"}}},
            "auth.type bearer, basic and apiKey need auth.secretName",
        ),
        (
            {"mcp": {"url": "http://a/mcp"}, "tokenExchange": EXCHANGE, "connection": CONNECTION},
            "set spec.tokenExchange or spec.connection, not both",
        ),
        (
            {"mcp": {"url": "http://a/mcp"}, "connection": {"clientId": "app", "tokenEndpoint": "https://a/token"}},
            "connection needs issuer (discovery) or both authorizationEndpoint and tokenEndpoint",
        ),
        (
            {"mcp": {"url": "http://a/mcp"}, "connection": {**CONNECTION, "revocationEndpoint": "ftp://a/revoke"}},
            "spec.connection.revocationEndpoint",
        ),
        (
            {"mcp": {"url": "http://a/mcp", "auth": {"type": "connection"}}},
            "auth.type connection sends each caller's own connected token, which only spec.connection supplies",
        ),
        (
            {"http": {"tools": [{"name": "a", "url": "https://a/x"}], "auth": {"type": "connection"}}},
            "which only spec.connection supplies",
        ),
        ({"mcp": {"url": "http://a/mcp"}, "retries": {"attempts": 0}}, "spec.retries.attempts"),
        ({"mcp": {"url": "http://a/mcp"}, "retries": {"retryOn": ["always"]}}, "spec.retries.retryOn"),
        ({"mcp": {"url": "http://a/mcp"}, "toolOverrides": {"echo": {"name": "a b"}}}, "toolOverrides.echo.name"),
        ({"http": {"tools": []}}, "spec.http.tools in body should have at least 1 items"),
        ({"http": {"tools": [{"name": "a b", "url": "https://a/x"}]}}, "spec.http.tools[0].name"),
        ({"http": {"tools": [{"name": "a", "url": "https://a/x", "method": "TRACE"}]}}, "spec.http.tools[0].method"),
        (
            {"http": {"tools": [{"name": "a", "url": "https://a/x", "body": "arguments", "bodyFields": {"k": "v"}}]}},
            "set either body (arguments or field) or bodyFields, not both",
        ),
        ({"http": {"tools": [{"name": "a", "url": "/x"}]}, "mcp": {"url": "http://a/mcp"}}, ONE_OF),
    ],
)
def test_invalid_upstreams_are_refused(kube: ControlPlane, res: Resources, spec: dict[str, Any], message: str) -> None:
    namespace = kube.namespace("val")
    body = refused(lambda: res.create("upstreams", namespace, "bad", spec))
    assert message in body


def test_upstream_name_must_fit_the_service_name(kube: ControlPlane, res: Resources) -> None:
    namespace = kube.namespace("val")
    body = refused(lambda: res.create("upstreams", namespace, "x" * 60, {"mcp": {"url": "http://a/mcp"}}))
    assert "at most 55 characters" in body


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"upstreams": []}, "spec.upstreams: Invalid value: 0: spec.upstreams in body should have at least 1 items"),
        ({"upstreams": [{"name": "a"}, {"name": "a"}]}, "spec.upstreams must not name the same Upstream twice"),
        (
            {"upstreams": [{"name": "a"}], "auth": {"mode": "oidc"}},
            "auth accepting oidc needs auth.oidc with issuer, audience and jwksUrl",
        ),
        (
            {"upstreams": [{"name": "a"}], "auth": {"methods": ["apiKey", "oidc"]}},
            "auth accepting oidc needs auth.oidc with issuer, audience and jwksUrl",
        ),
        (
            {"upstreams": [{"name": "a"}], "auth": {"mode": "apiKey", "methods": ["apiKey"]}},
            "auth: set mode (one method) or methods (several), not both",
        ),
        ({"upstreams": [{"name": "a"}], "auth": {"methods": ["apiKey", "apiKey"]}}, "spec.auth.methods[1]"),
        ({"upstreams": [{"name": "a"}], "auth": {"methods": ["none"]}}, 'supported values: "apiKey", "oidc"'),
        ({"upstreams": [{"name": "a"}], "auth": {"mode": "password"}}, 'supported values: "apiKey", "oidc", "none"'),
        ({"upstreams": [{"name": "a"}], "limits": {"rate": {"perSecond": 0, "burst": 1}}}, "limits.rate.perSecond"),
        ({"upstreams": [{"name": "Not_A_Label"}]}, "spec.upstreams[0].name"),
        (
            {"upstreams": [{"name": "a", "toolOverrides": {"echo": {"annotations": {"readOnlyHint": "yes"}}}}]},
            "readOnlyHint",
        ),
        ({"upstreams": [{"name": "a"}], "retries": {"attempts": 0}}, "spec.retries.attempts"),
        ({"upstreams": [{"name": "a", "retries": {"retryOn": ["always"]}}]}, "spec.upstreams[0].retries.retryOn[0]"),
        ({"upstreams": [{"name": "a"}], "retries": {"jitter": 2}}, "spec.retries.jitter"),
        ({"upstreams": [{"name": "a"}], "discovery": {"mode": "all"}}, 'supported values: "off", "search", "hybrid"'),
        ({"upstreams": [{"name": "a"}], "discovery": {"ranking": "neural"}}, 'supported values: "lexical", "semantic"'),
        ({"upstreams": [{"name": "a"}], "discovery": {"maxResults": 500}}, "spec.discovery.maxResults"),
        (
            {"upstreams": [{"name": "a"}], "policy": {"rules": [RULE, RULE]}},
            'spec.policy.rules[1]: Duplicate value: {"name":"r"}',
        ),
        ({"upstreams": [{"name": "a"}], "policy": {"rules": [{**RULE, "effect": "maybe"}]}}, "rules[0].effect"),
        ({"upstreams": [{"name": "a"}], "policy": {"rules": [{**RULE, "when": ""}]}}, "rules[0].when"),
        ({"upstreams": [{"name": "a"}], "limits": {"callLimits": [{"name": "n"}]}}, "a call limit needs rate or quota"),
        (
            {"upstreams": [{"name": "a"}], "limits": {"callLimits": [{"name": "n", "per": ["user"]}]}},
            "callLimits[0].per[0]",
        ),
    ],
)
def test_invalid_profiles_are_refused(kube: ControlPlane, res: Resources, spec: dict[str, Any], message: str) -> None:
    namespace = kube.namespace("val")
    body = refused(lambda: res.create("profiles", namespace, "bad", spec))
    assert message in body


def test_profile_name_is_the_id_unless_spec_id_is_set(kube: ControlPlane, res: Resources) -> None:
    namespace = kube.namespace("val")
    long_name = "p" * 70
    body = refused(lambda: res.create("profiles", namespace, long_name, {"upstreams": [{"name": "a"}]}))
    assert "without spec.id the profile id is metadata.name, which must then be a DNS label" in body
    created = res.create("profiles", namespace, long_name, {"id": "short-id", "upstreams": [{"name": "a"}]})
    assert created["spec"]["id"] == "short-id"


def test_invalid_tenants_are_refused(res: Resources) -> None:
    assert "spec.namespaces: Required value" in refused(lambda: res.tenant("t-no-ns", namespaces=None))  # type: ignore[arg-type]
    body = refused(lambda: res.tenant("tenant.with.dots", namespaces=["a"]))
    assert "metadata.name is the tenant id and must be a DNS label" in body
    body = refused(lambda: res.tenant("t-bad-ns", namespaces=["Not_A_Namespace"]))
    assert "spec.namespaces[0]" in body


def test_valid_resources_are_accepted_with_defaults(kube: ControlPlane, res: Resources) -> None:
    namespace = kube.namespace("val")
    upstream = res.create(
        "upstreams",
        namespace,
        "pets",
        {
            "openapi": {
                "spec": {"configMapKeyRef": {"name": "pets-openapi", "key": "openapi.json"}},
                "baseUrl": "https://pets.example.com/v1",
                "auth": {"type": "bearer", "secretName": "pets-creds"},
                "include": {"tags": ["pets"]},
            },
        },
    )
    assert upstream["spec"]["replicas"] == 1
    assert upstream["spec"]["openapi"]["auth"]["tokenKey"] == "token"
    profile = res.create("profiles", namespace, "pets", {"upstreams": [{"name": "pets"}]})
    assert profile["spec"]["upstreams"][0]["prefix"] == "auto"
    checked = res.create(
        "upstreams",
        namespace,
        "checked",
        {
            "mcp": {"url": "http://a/mcp"},
            "healthCheck": {"intervalSeconds": 5},
            "circuitBreaker": {},
            "toolOverrides": {"search": {"name": "find", "fixedArguments": {"limit": 5, "filter": {"lang": "en"}}}},
        },
    )
    connected = res.create(
        "upstreams",
        namespace,
        "crm",
        {
            "openapi": {"spec": {"url": "https://crm.example.com/openapi.json"}, "auth": {"type": "connection"}},
            "connection": {**CONNECTION, "scopes": ["offline_access", "crm.read"], "displayName": "CRM"},
        },
    )
    assert connected["spec"]["connection"]["clientSecret"] == SECRET_REF
    public = {"authorizationEndpoint": "https://a/authorize", "tokenEndpoint": "https://a/token", "clientId": "app"}
    res.create("upstreams", namespace, "public", {"mcp": {"url": "http://a/mcp"}, "connection": public})
    assert checked["spec"]["healthCheck"] == {
        "enabled": True,
        "intervalSeconds": 5,
        "timeoutSeconds": 5,
        "healthyThreshold": 2,
        "unhealthyThreshold": 3,
        "hideToolsWhenUnhealthy": False,
    }
    assert checked["spec"]["circuitBreaker"]["openSeconds"] == 30
    assert checked["spec"]["toolOverrides"]["search"]["fixedArguments"] == {"limit": 5, "filter": {"lang": "en"}}
