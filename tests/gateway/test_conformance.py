"""The official conformance suite through gateway -> adapter -> feature server loses nothing.

Both pinned suite versions run against the feature server directly and through the chain on
three profiles: one with auth `none`, one requiring an API key, and one whose upstream is told
a handshake-era client's era (`sendCallerHeader`: the handshake fast path serves sessions that
declared a back channel, handshake_relay.py). The suite cannot send
credentials, so for the second a loopback proxy (tests/support/header_proxy.py) adds the
key's Authorization header and forwards everything else untouched. Every scenario that passes
directly must pass through the gateway on both profiles, the pass counts must be equal, and
named scenarios must be among the direct passes (a run that silently covered less fails).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.gateway.support import GatewayProc, Spawn, profile, start_adapter, start_feature, start_gateway, write_config
from tests.support.conformance import ScenarioResult, describe_failures, regressions, run_server_suite_detailed
from tests.support.processes import free_port

SUITES: dict[str, str | None] = {"stable": None, "next": "all"}
EXPECTED_DIRECT = {
    "stable": {"tools-call-elicitation", "resources-subscribe", "tools-call-with-logging", "dns-rebinding-protection"},
    "next": {"server-stateless", "http-header-validation", "input-required-result-capability-check", "caching"},
}


@dataclass
class Chain:
    feature_url: str
    gateway: GatewayProc
    keyed_url: str  # the API-key profile, through the header-adding proxy

    def url(self, target: str) -> str:
        return self.keyed_url if target == "keyed" else self.gateway.url(target)


@pytest.fixture(scope="module")
def chain(spawn_module: Spawn, tmp_path_factory: pytest.TempPathFactory) -> Chain:
    _, feature_url = start_feature(spawn_module, name="feature-conformance")
    folder: Path = tmp_path_factory.mktemp("conformance")
    adapter_url = start_adapter(spawn_module, folder, feature_url, name="adapter-conformance", trust_caller=True)
    bridged = profile("bridged", "suite", [("adapter", adapter_url)], auth={"mode": "none"})
    bridged["upstreams"][0]["sendCallerHeader"] = True
    routing = {
        "tenants": [{"id": "suite"}],
        "profiles": [
            profile("open", "suite", [("adapter", adapter_url)], auth={"mode": "none"}),
            profile("keyed", "suite", [("adapter", adapter_url)]),  # API keys: the default
            bridged,
        ],
    }
    gateway = start_gateway(spawn_module, write_config(folder / "routing.yaml", routing), name="gateway-conformance")
    with gateway.admin() as admin:
        created = admin.post("/admin/v1/tenants/suite/keys", json={"name": "conformance"})
    assert created.status_code == 201, created.text
    # Without the key the profile refuses: what passes below passed because the proxy authenticated.
    assert httpx.post(gateway.url("keyed"), json={}, timeout=10).status_code == 401
    port = free_port()
    spawn_module(
        [sys.executable, "-m", "tests.support.header_proxy", "--target", gateway.base, "--port", str(port)],
        name="auth-proxy",
        env={"PROXY_HEADER": f"Authorization: Bearer {created.json()['key']}"},
        ready_url=f"http://127.0.0.1:{port}/readyz",
    )
    return Chain(feature_url, gateway, f"http://127.0.0.1:{port}/keyed/mcp")


def _run(version: str, url: str) -> dict[str, ScenarioResult]:
    return run_server_suite_detailed(version, url, suite=SUITES[version], timeout=240)  # type: ignore[arg-type]


def _passed(results: dict[str, ScenarioResult]) -> dict[str, bool]:
    return {name: result.passed for name, result in results.items()}


@pytest.fixture(scope="module")
def direct(chain: Chain) -> dict[str, dict[str, ScenarioResult]]:
    return {version: _run(version, chain.feature_url) for version in SUITES}


@pytest.mark.parametrize("version", list(SUITES))
def test_direct_baseline(direct: dict[str, dict[str, ScenarioResult]], version: str) -> None:
    passed = {name for name, ok in _passed(direct[version]).items() if ok}
    assert EXPECTED_DIRECT[version] <= passed, describe_failures(direct[version])


@pytest.mark.parametrize("target", ["open", "keyed", "bridged"])
@pytest.mark.parametrize("version", list(SUITES))
def test_gateway_passes_what_the_server_passes(
    chain: Chain, direct: dict[str, dict[str, ScenarioResult]], version: str, target: str
) -> None:
    reference = _passed(direct[version])
    through = _run(version, chain.url(target))
    lost = regressions(reference, _passed(through))
    detail = describe_failures({name: through[name] for name in lost if name in through})
    assert lost == [], f"{version} via the {target} profile: regressions {lost}\n{detail}"
    assert sum(_passed(through).values()) == sum(reference.values())
    assert len(through) == len(direct[version]), sorted(set(direct[version]) ^ set(through))
