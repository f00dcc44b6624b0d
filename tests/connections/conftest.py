"""Connections tests: the real Keycloak (the session's), two extra clients in its test realm, a
third-party MCP server that checks the user's token, real PostgreSQL, headless Chromium.

- `gateway-console`: the gateway's sign-in client (whoever opens a connect link signs in with it;
  its tokens carry the gateway's audience, like any MCP caller's).
- `third-party-app`: the third party's OAuth client the gateway connects users through. Its
  access tokens live 30 s, which the gateway's 30 s refresh margin turns into a refresh on every
  call: each call goes through the refresh path, and a revocation applies to the next call.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import conftest as root_conftest
from tests.console.conftest import browser  # noqa: F401  (the session's headless Chromium)
from tests.gateway.support import GatewayProc, Spawn, start_gateway, write_config
from tests.identity.conftest import spawn_module  # noqa: F401
from tests.support import postgres
from tests.support.keycloak import Keycloak
from tests.support.processes import free_port

SIGN_IN = ("gateway-console", "gateway-console-secret")
THIRD_PARTY = ("third-party-app", "third-party-secret")
KEY_1 = "k1:" + base64.b64encode(b"1" * 32).decode()
KEY_2 = "k2:" + base64.b64encode(b"2" * 32).decode()
HERE = Path(__file__).resolve().parent


def _client(client_id: str, secret: str, scopes: list[str], **attributes: str) -> dict[str, Any]:
    return {
        "clientId": client_id,
        "enabled": True,
        "publicClient": False,
        "secret": secret,
        "standardFlowEnabled": True,
        "directAccessGrantsEnabled": False,
        "fullScopeAllowed": False,
        "redirectUris": ["http://127.0.0.1:*"],
        "attributes": {"pkce.code.challenge.method": "S256", **attributes},
        "defaultClientScopes": scopes,
    }


@pytest.fixture(scope="module")
def provider(keycloak: Keycloak) -> Keycloak:
    """The session's Keycloak with the two clients registered (once; later modules find them)."""
    with keycloak.admin() as admin:
        for client in (
            _client(*SIGN_IN, ["basic", "identity", "mcp:tools"]),
            _client(*THIRD_PARTY, ["basic", "identity"], **{"access.token.lifespan": "30"}),
        ):
            found = admin.get("/mcp/clients", params={"clientId": client["clientId"]}).json()
            if not found:
                admin.post("/mcp/clients", json=client).raise_for_status()
    return keycloak


@pytest.fixture(scope="module")
def token_server(spawn_module: Spawn, provider: Keycloak) -> str:  # noqa: F811
    port = free_port()
    cmd = [sys.executable, str(HERE / "token_server.py"), "--port", str(port), "--issuer", provider.issuer]
    spawn_module(cmd, name="token-server", ready_url=f"http://127.0.0.1:{port}/seen")
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def module_db() -> Iterator[str]:
    name, dsn = root_conftest._in_thread(postgres.create_database)
    yield dsn
    root_conftest._in_thread(lambda: postgres.drop_database(name))


def connection(provider: Keycloak, **extra: Any) -> dict[str, Any]:
    return {"issuer": provider.issuer, "clientId": THIRD_PARTY[0], "clientSecretEnv": "CRM_SECRET", **extra}


def gateway_config(
    path: Path, provider: Keycloak, port: int, upstreams: list[dict[str, Any]], methods: list[str] | None = None
) -> Path:
    oidc = provider.oidc_settings(requiredScopes=["mcp:tools"], jwksMinRefetchSeconds=0)
    auth = {"methods": methods, "oidc": oidc} if methods else {"mode": "oidc", "oidc": oidc}
    sign_in = {"clientId": SIGN_IN[0], "clientSecretEnv": "SIGN_IN_SECRET", "scopes": ["openid", "mcp:tools"]}
    return write_config(
        path,
        {
            "gateway": {
                "allowPrivateJwks": True,
                "publicUrl": f"http://127.0.0.1:{port}",
                "connections": {"userSignIn": sign_in},
            },
            "tenants": [{"id": "acme"}],
            "profiles": [{"id": "crm", "tenant": "acme", "upstreams": upstreams, "auth": auth}],
        },
    )


def start_connected_gateway(
    spawn: Spawn,
    tmp: Path,
    provider: Keycloak,
    upstreams: list[dict[str, Any]],
    dsn: str,
    keys: str,
    name: str,
    methods: list[str] | None = None,
) -> GatewayProc:
    port = free_port()
    config = gateway_config(tmp / f"{name}.yaml", provider, port, upstreams, methods)
    env = {
        "MCP_GATEWAY_CONNECTION_KEYS": keys,
        "SIGN_IN_SECRET": SIGN_IN[1],
        "CRM_SECRET": THIRD_PARTY[1],
    }
    return start_gateway(spawn, config, dsn=dsn, name=name, env=env, port=port)


def seen_tokens(token_server: str) -> list[str]:
    return list(httpx.get(f"{token_server}/seen", timeout=10).json())
