"""Run the official MCP conformance suite's *server* scenarios against a URL.

Two pinned versions of the suite are installed by `scripts/setup-node.sh`
(pins in `scripts/versions.env`): "stable" (0.1.x: handshake-era scenarios) and
"next" (0.2.0 pre-release: adds the stateless 2026-07-28 scenarios). Both need
Node.js 22, installed by the same script.

Typical use, e.g. to check a proxy loses nothing:

    direct = run_server_suite("next", direct_url, suite="all")
    proxied = run_server_suite("next", proxy_url, suite="all")
    assert regressions(direct, proxied) == []
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parents[2]
SETUP_SCRIPT = REPO / "scripts" / "setup-node.sh"
CACHE = Path(os.environ.get("MCP_GATEWAY_CACHE", Path.home() / ".cache" / "mcp-gateway"))
SUITE_DIRS = {"stable": "conformance-stable", "next": "conformance-next"}
SuiteVersion = Literal["stable", "next"]
# Result folders are named server-<scenario>-<ISO timestamp with dashes>.
_RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$")
FAILING_STATUSES = {"FAILURE"}


class ConformanceError(RuntimeError):
    """The suite could not be run at all (as opposed to scenarios failing)."""


@dataclass(frozen=True)
class Check:
    id: str
    status: str
    message: str | None


@dataclass(frozen=True)
class ScenarioResult:
    scenario: str
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when the scenario ran at least one check and none failed (warnings pass, as in the CLI)."""
        return bool(self.checks) and not self.failures

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if check.status in FAILING_STATUSES]


def node_bin() -> Path:
    """Directory holding Node.js 22's `node` (override with MCP_TEST_NODE22_BIN)."""
    return Path(os.environ.get("MCP_TEST_NODE22_BIN", CACHE / "node22" / "bin"))


@cache
def ensure_installed() -> None:
    """Run scripts/setup-node.sh once per process (a no-op taking milliseconds when already installed)."""
    result = subprocess.run(["bash", str(SETUP_SCRIPT)], capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        raise ConformanceError(f"scripts/setup-node.sh failed ({result.returncode}):\n{result.stderr[-4000:]}")


def suite_entry(version: SuiteVersion) -> Path:
    """The CLI script of one installed suite version."""
    if version not in SUITE_DIRS:
        raise ValueError(f"unknown conformance suite version {version!r}; use one of {sorted(SUITE_DIRS)}")
    entry = CACHE / "npm" / SUITE_DIRS[version] / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist"
    return entry / "index.js"


def suite_command(
    version: SuiteVersion,
    url: str,
    output_dir: Path,
    *,
    suite: str | None = None,
    spec_version: str | None = None,
    scenario: str | None = None,
) -> list[str]:
    cmd = [str(node_bin() / "node"), str(suite_entry(version)), "server", "--url", url, "-o", str(output_dir)]
    if suite is not None:
        cmd += ["--suite", suite]
    if spec_version is not None:
        cmd += ["--spec-version", spec_version]
    if scenario is not None:
        cmd += ["--scenario", scenario]
    return cmd


def parse_results(output_dir: Path) -> dict[str, ScenarioResult]:
    """Read every `<dir>/checks.json` the CLI wrote into `output_dir`."""
    results: dict[str, ScenarioResult] = {}
    for checks_file in sorted(output_dir.glob("*/checks.json")):
        match = _RESULT_DIR.match(checks_file.parent.name)
        if match is None:
            continue
        raw: list[dict[str, Any]] = json.loads(checks_file.read_text())
        checks = [Check(str(c.get("id")), str(c.get("status")), c.get("errorMessage")) for c in raw]
        results[match["scenario"]] = ScenarioResult(match["scenario"], checks)
    return results


def run_server_suite_detailed(
    version: SuiteVersion,
    url: str,
    *,
    suite: str | None = None,
    spec_version: str | None = None,
    scenario: str | None = None,
    timeout: float = 300.0,
) -> dict[str, ScenarioResult]:
    """Run the suite's server scenarios against `url` and return each scenario's checks.

    `suite` is the CLI's --suite ("active" by default, "all", "pending", ...);
    `spec_version` its --spec-version (e.g. "2026-07-28"). Raises ConformanceError
    when the CLI produced no results (bad URL, crash, timeout).
    """
    ensure_installed()
    with tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
        output_dir = Path(tmp)
        cmd = suite_command(version, url, output_dir, suite=suite, spec_version=spec_version, scenario=scenario)
        env = {**os.environ, "PATH": f"{node_bin()}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ConformanceError(f"conformance suite {version} did not finish within {timeout}s") from exc
        results = parse_results(output_dir)
    if not results:
        raise ConformanceError(
            f"conformance suite {version} produced no results (exit {proc.returncode}):\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return results


def run_server_suite(
    version: SuiteVersion,
    url: str,
    *,
    suite: str | None = None,
    spec_version: str | None = None,
    scenario: str | None = None,
    timeout: float = 300.0,
) -> dict[str, bool]:
    """Scenario name -> passed, for one suite version run against `url` (see run_server_suite_detailed)."""
    detailed = run_server_suite_detailed(
        version, url, suite=suite, spec_version=spec_version, scenario=scenario, timeout=timeout
    )
    return {name: result.passed for name, result in detailed.items()}


def regressions(reference: dict[str, bool], candidate: dict[str, bool]) -> list[str]:
    """Scenarios that pass in `reference` but fail (or did not run) in `candidate`."""
    return sorted(name for name, ok in reference.items() if ok and not candidate.get(name, False))


def describe_failures(results: dict[str, ScenarioResult]) -> str:
    """A readable summary of failing checks, for assertion messages."""
    lines = []
    for name, result in sorted(results.items()):
        for check in result.failures:
            lines.append(f"{name}: {check.id}: {check.message}")
    return "\n".join(lines) or "no failing checks"
