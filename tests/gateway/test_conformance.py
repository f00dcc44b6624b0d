"""The official conformance suite through gateway -> adapter -> feature server loses nothing.

Both pinned suite versions run against the feature server directly and through the chain
(a profile with auth `none`: the suite sends no credentials); every scenario that passes
directly must pass through the gateway, and the pass counts must be equal.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gateway.support import GatewayProc, Spawn, profile, start_adapter, start_feature, start_gateway, write_config
from tests.support.conformance import SuiteVersion, regressions, run_server_suite


@pytest.fixture(scope="module")
def chain(spawn_module: Spawn, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, GatewayProc]:
    _, feature_url = start_feature(spawn_module, name="feature-conformance")
    folder: Path = tmp_path_factory.mktemp("conformance")
    adapter_url = start_adapter(spawn_module, folder, feature_url, name="adapter-conformance")
    routing = {
        "tenants": [{"id": "suite"}],
        "profiles": [profile("open", "suite", [("adapter", adapter_url)], auth={"mode": "none"})],
    }
    gateway = start_gateway(spawn_module, write_config(folder / "routing.yaml", routing), name="gateway-conformance")
    return feature_url, gateway


@pytest.mark.parametrize(("version", "suite"), [("stable", None), ("next", "all")])
def test_gateway_passes_what_the_server_passes(
    chain: tuple[str, GatewayProc], version: SuiteVersion, suite: str | None
) -> None:
    feature_url, gateway = chain
    direct = run_server_suite(version, feature_url, suite=suite, timeout=240)
    through = run_server_suite(version, gateway.url("open"), suite=suite, timeout=240)
    assert sum(direct.values()) >= 30, direct
    assert regressions(direct, through) == []
    assert sum(through.values()) == sum(direct.values())
