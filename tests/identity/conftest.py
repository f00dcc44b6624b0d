"""Identity tests: a real OIDC provider (the session's `keycloak` fixture, tests/conftest.py),
headless Chromium for its login form, and gateways whose profiles trust it."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import conftest as root_conftest
from tests.console.conftest import browser  # noqa: F401  (the session's headless Chromium)
from tests.gateway.support import GatewayProc, Spawn, profile, start_feature, start_gateway, write_config
from tests.support.keycloak import Keycloak


@pytest.fixture(scope="module")
def spawn_module() -> Iterator[Spawn]:
    """The root `spawn` fixture (tests/conftest.py), scoped to a module: processes its tests share."""
    yield from inspect.unwrap(root_conftest.spawn)()


@pytest.fixture
def feature(spawn: Spawn) -> str:
    return start_feature(spawn)[1]


@pytest.fixture(scope="module")
def feature_url(spawn_module: Spawn) -> str:
    return start_feature(spawn_module)[1]


@pytest.fixture(scope="module")
def sso_gateway(
    spawn_module: Spawn, feature_url: str, keycloak: Keycloak, tmp_path_factory: pytest.TempPathFactory
) -> GatewayProc:
    """Profile `sso` trusts the realm's tokens for the audience `mcp-gateway` with scope `mcp:tools`."""
    oidc = keycloak.oidc_settings(requiredScopes=["mcp:tools"], jwksMinRefetchSeconds=0, leewaySeconds=0)
    config = write_config(
        Path(tmp_path_factory.mktemp("sso")) / "routing.yaml",
        {
            "gateway": {"allowPrivateJwks": True},  # the provider is on loopback
            "tenants": [{"id": "acme"}],
            "profiles": [profile("sso", "acme", [("feat", feature_url)], auth={"mode": "oidc", "oidc": oidc})],
        },
    )
    return start_gateway(spawn_module, config, name="gw-sso")
