"""The official conformance suite (both pinned versions) against the feature server over HTTP.

Recorded results (suite pins in scripts/versions.env):
- stable 0.1.16, active suite: 30/30 scenarios pass (handshake era).
- next 0.2.0-alpha.12, --suite all: 65 scenarios, 55 pass. The 10 failing are
  the `tasks-*` scenarios of the io.modelcontextprotocol/tasks *extension*
  (SEP-2663), which the SDK (mcp 2.3.0) does not implement and the suite marks
  "not scored"; they are listed in TASKS_EXTENSION below and asserted to be the
  only failures. (`tasks-status-notifications` passes vacuously.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.launch import http_command, http_url
from tests.support.conformance import describe_failures, run_server_suite_detailed
from tests.support.processes import ManagedProcess, free_port, start_process

TASKS_EXTENSION = {
    "tasks-lifecycle",
    "tasks-capability-negotiation",
    "tasks-wire-fields",
    "tasks-request-state-removal",
    "tasks-mrtr-input",
    "tasks-request-headers",
    "tasks-dispatch-and-envelope",
    "tasks-required-task-error",
    "tasks-mrtr-composition",
}
# Scenarios of the 2026-07-28 revision that must be among the passes (guards against a suite run that silently
# covered less than expected).
MODERN_SCENARIOS = {
    "server-stateless",
    "caching",
    "sep-2164-resource-not-found",
    "http-header-validation",
    "http-custom-header-server-validation",
    "json-schema-2020-12",
    "input-required-result-basic-elicitation",
    "input-required-result-basic-sampling",
    "input-required-result-basic-list-roots",
    "input-required-result-request-state",
    "input-required-result-multiple-input-requests",
    "input-required-result-multi-round",
    "input-required-result-non-tool-request",
    "input-required-result-tampered-state",
    "input-required-result-capability-check",
    "input-required-result-unsupported-methods",
}


@pytest.fixture(scope="module")
def feature_url() -> Iterator[str]:
    port = free_port()
    url = http_url(port)
    process: ManagedProcess = start_process(http_command(port), name="feature-server-conformance", ready_url=url)
    yield url
    process.stop()


def test_stable_suite_passes_every_scenario(feature_url: str) -> None:
    results = run_server_suite_detailed("stable", feature_url, timeout=240)
    assert len(results) >= 30, sorted(results)
    failing = sorted(name for name, result in results.items() if not result.passed)
    assert failing == [], describe_failures(results)


def test_next_suite_default_run_passes_every_scenario(feature_url: str) -> None:
    results = run_server_suite_detailed("next", feature_url, timeout=240)
    assert len(results) >= 30, sorted(results)
    assert {"server-session-lifecycle", "tools-call-sampling", "resources-subscribe"} <= set(results)
    failing = sorted(name for name, result in results.items() if not result.passed)
    assert failing == [], describe_failures(results)


def test_next_suite_all_scenarios_pass_except_tasks_extension(feature_url: str) -> None:
    results = run_server_suite_detailed("next", feature_url, suite="all", timeout=240)
    passing = {name for name, result in results.items() if result.passed}
    failing = {name for name, result in results.items() if not result.passed}
    assert passing >= MODERN_SCENARIOS, describe_failures(results)
    assert failing <= TASKS_EXTENSION, describe_failures({n: results[n] for n in failing - TASKS_EXTENSION})
    assert len(passing) >= 55, sorted(passing)
