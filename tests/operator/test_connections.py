"""Per-user connections on the Upstream CRD: the operator renders spec.connection into the routing
config (the client secret by reference, never its value) and makes the adapter relay the caller's
connected token; the gateway reads that secret through the real API server."""

from __future__ import annotations

import uuid
from typing import Any

import yaml
from kubernetes import client as k8s
from mcp_adapter.config import HttpSource, McpRemoteSource, parse_config
from mcp_gateway.config import RoutingConfig
from mcp_gateway.connections.service import Connections
from mcp_gateway.connections.store import MemoryConnections
from mcp_gateway.token_exchange import SecretReader
from mcp_operator.adapter_config import build

from tests.connections.conftest import KEY_1
from tests.operator.conftest import OperatorEnv
from tests.operator.support import wait_for

OIDC = {
    "mode": "oidc",
    "oidc": {"issuer": "https://issuer.test", "audience": "mcp", "jwksUrl": "https://issuer.test/jwks"},
}
CONNECTION = {
    "issuer": "https://login.crm.example.com",
    "clientId": "mcp-gateway",
    "clientSecret": {"secretKeyRef": {"name": "crm-oauth", "key": "client-secret"}},
    "scopes": ["offline_access", "crm.read"],
    "displayName": "CRM",
}
SECRET_VALUE = "crm-client-secret-never-in-routing"


def _configmap(env: OperatorEnv, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        cm = env.res.core.read_namespaced_config_map(f"{name}-adapter", namespace)
    except k8s.ApiException:
        return None
    return yaml.safe_load(cm.data["adapter.yaml"])  # type: ignore[no-any-return]


async def test_a_connection_upstream_reaches_the_gateway_and_its_adapter_relays_the_callers_token(
    operator_env: OperatorEnv,
) -> None:
    env, res = operator_env, operator_env.res
    namespace = env.namespace()
    res.tenant(f"crm-{uuid.uuid4().hex[:6]}", [namespace])
    res.core.create_namespaced_secret(
        namespace,
        k8s.V1Secret(metadata=k8s.V1ObjectMeta(name="crm-oauth"), string_data={"client-secret": SECRET_VALUE}),
    )
    openapi = {"spec": {"url": "https://crm.example.com/openapi.json"}, "auth": {"type": "connection"}}
    res.create("upstreams", namespace, "crm", {"openapi": openapi, "connection": CONNECTION})
    remote = {"url": "https://crm.example.com/mcp", "auth": {"type": "connection"}}
    res.create("upstreams", namespace, "crm-mcp", {"mcp": remote, "connection": CONNECTION})
    profile_id = f"crm-{uuid.uuid4().hex[:6]}"
    upstreams = [{"name": "crm"}, {"name": "crm-mcp"}]
    res.create("profiles", namespace, "crm", {"id": profile_id, "upstreams": upstreams, "auth": OIDC})

    routed = wait_for(lambda: res.routed_profile(env.system_namespace, profile_id), what="routed profile")
    rendered = {k: v for k, v in CONNECTION.items() if k != "clientSecret"}
    ref = {"namespace": namespace, "name": "crm-oauth", "key": "client-secret"}
    assert [u["connection"] for u in routed["upstreams"]] == [{**rendered, "clientSecretRef": ref}] * 2
    assert SECRET_VALUE not in yaml.safe_dump(res.routing(env.system_namespace))
    config = RoutingConfig.model_validate(res.routing(env.system_namespace))
    settings = next(p for p in config.profiles if p.id == profile_id).upstreams[0].connection
    assert settings is not None and settings.display_name == "CRM"

    # The adapters relay the token the gateway sends (auth type connection), with no Secret of their own.
    openapi_source = wait_for(lambda: _configmap(env, namespace, "crm"), what="adapter ConfigMap")["sources"][0]
    assert openapi_source["auth"] == {"type": "connection"}
    mcp_source = wait_for(lambda: _configmap(env, namespace, "crm-mcp"), what="adapter ConfigMap")["sources"][0]
    assert mcp_source["auth"] == {"type": "connection"}
    parsed = parse_config({"sources": [mcp_source]}).sources[0]
    assert isinstance(parsed, McpRemoteSource) and parsed.auth is not None and parsed.auth.type == "connection"

    # The gateway reads the client secret through the API server when it talks to the provider.
    connections = Connections(
        {"MCP_GATEWAY_CONNECTION_KEYS": KEY_1}, MemoryConnections(), SecretReader(lambda: k8s.CoreV1Api(env.api))
    )
    try:
        client = await connections.client(settings)
    finally:
        await connections.close()
    assert (client.client_id, client.secret) == ("mcp-gateway", SECRET_VALUE)


def test_an_http_source_with_auth_connection_is_what_the_adapter_accepts() -> None:
    tool = {"name": "my_deals", "url": "https://crm.example.com/deals"}
    adapter = build(
        "crm", "team", {"connection": CONNECTION, "http": {"tools": [tool], "auth": {"type": "connection"}}}
    )
    source = adapter.config["sources"][0]
    assert source["auth"] == {"type": "connection"} and adapter.env == []
    parsed = HttpSource.model_validate(source)
    assert parsed.auth is not None and parsed.auth.type == "connection"
