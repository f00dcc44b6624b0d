"""The official conformance suite through the adapter passes every scenario it passes against the server directly.

Targets, all serving the feature-complete test server:
- direct: the feature server over streamable HTTP;
- stdio: the adapter spawning the feature server as a stdio child;
- remote: the adapter fronting the feature server over HTTP (an `mcp` source).

Both suite versions run against every target: "stable" (0.1.x, handshake era,
default scenarios) and "next" (0.2.0 pre-release, `--suite all`, adding the
2026-07-28 scenarios). Each suite runs once per target; the direct runs are
shared by the module. The adapter is addressed as `localhost` because the
suite's DNS-rebinding scenario needs a loopback URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.adapter.support import PYTHON, feature_stdio
from tests.servers.launch import http_command, http_url
from tests.support.conformance import ScenarioResult, describe_failures, regressions, run_server_suite_detailed
from tests.support.processes import ManagedProcess, free_port, start_process

SUITES: dict[str, str | None] = {"stable": None, "next": "all"}
# Scenarios that must pass directly, so a run that silently covered less fails loudly.
EXPECTED_DIRECT = {
    "stable": {"tools-call-elicitation", "resources-subscribe", "tools-call-with-logging", "dns-rebinding-protection"},
    "next": {"server-stateless", "http-header-validation", "input-required-result-capability-check", "caching"},
}


def _run(version: str, url: str) -> dict[str, ScenarioResult]:
    return run_server_suite_detailed(version, url, suite=SUITES[version], timeout=240)  # type: ignore[arg-type]


def _passed(results: dict[str, ScenarioResult]) -> dict[str, bool]:
    return {name: result.passed for name, result in results.items()}


@pytest.fixture(scope="module")
def feature_http() -> Iterator[str]:
    port = free_port()
    process = start_process(http_command(port), name="conformance-feature", ready_url=http_url(port))
    yield http_url(port)
    process.stop()


@pytest.fixture(scope="module")
def direct(feature_http: str) -> dict[str, dict[str, ScenarioResult]]:
    return {version: _run(version, feature_http) for version in SUITES}


def _adapter(tmp: Path, name: str, source: dict[str, Any]) -> tuple[ManagedProcess, str]:
    port = free_port()
    config = tmp / f"{name}.yaml"
    config.write_text(yaml.safe_dump({"sources": [source]}))
    process = start_process(
        [PYTHON, "-m", "mcp_adapter.cli", "--config", str(config), "--port", str(port)],
        name=name,
        ready_url=f"http://127.0.0.1:{port}/readyz",
        timeout=60,
    )
    return process, f"http://localhost:{port}/mcp"


@pytest.fixture(scope="module")
def adapters(feature_http: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("conformance")
    stdio, stdio_url = _adapter(tmp, "adapter-conf-stdio", feature_stdio("feat", prefixPolicy="never"))
    remote, remote_url = _adapter(
        tmp, "adapter-conf-remote", {"name": "feat", "type": "mcp", "url": feature_http, "prefixPolicy": "never"}
    )
    yield {"stdio": stdio_url, "remote": remote_url}
    stdio.stop()
    remote.stop()


@pytest.mark.parametrize("version", list(SUITES))
def test_direct_baseline(direct: dict[str, dict[str, ScenarioResult]], version: str) -> None:
    passed = {name for name, ok in _passed(direct[version]).items() if ok}
    assert EXPECTED_DIRECT[version] <= passed, describe_failures(direct[version])


@pytest.mark.parametrize("target", ["stdio", "remote"])
@pytest.mark.parametrize("version", list(SUITES))
def test_adapter_passes_what_the_server_passes(
    direct: dict[str, dict[str, ScenarioResult]], adapters: dict[str, str], version: str, target: str
) -> None:
    reference = _passed(direct[version])
    through = _run(version, adapters[target])
    candidate = _passed(through)
    lost = regressions(reference, candidate)
    direct_count = sum(reference.values())
    adapter_count = sum(candidate[name] for name in reference if name in candidate)
    detail = describe_failures({name: through[name] for name in lost if name in through})
    assert lost == [], f"{version} via {target}: regressions {lost}\n{detail}"
    assert adapter_count == direct_count, (direct_count, adapter_count)
    assert len(through) == len(direct[version]), sorted(set(direct[version]) ^ set(through))
