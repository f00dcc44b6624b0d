"""Configuration errors stop start-up with one message per problem, naming the field path."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.adapter.support import PYTHON, feature_stdio, start_adapter
from tests.support.processes import ManagedProcess

BAD = """
server: {prefixSeparator: ":"}
sources:
  - name: a
    type: stdio
  - name: b
    type: openapi
    spec: x.json
    baseUrl: ftp://nope
  - name: c
    type: smtp
  - name: a
    type: mcp
    url: http://127.0.0.1:1/mcp
    headers: {Authorization: {fromEnv: SURELY_UNSET_VARIABLE_FOR_TEST}}
"""


def test_bad_config_lists_every_problem(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(BAD)
    done = subprocess.run(
        [PYTHON, "-m", "mcp_adapter.cli", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    err = done.stderr
    assert "server.prefixSeparator: must use only" in err
    assert "sources[0].command: required field is missing" in err
    assert "sources[1].baseUrl: must be an absolute http(s) URL" in err
    assert "sources[2]: unknown source type; expected one of stdio, mcp, openapi, http" in err
    assert "Traceback" not in err


def test_unset_env_reference_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "env.yaml"
    config.write_text(
        "sources:\n  - name: r\n    type: mcp\n    url: http://127.0.0.1:1/mcp\n"
        "    headers: {Authorization: {fromEnv: SURELY_UNSET_VARIABLE_FOR_TEST}}\n"
    )
    done = subprocess.run(
        [PYTHON, "-m", "mcp_adapter.cli", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "sources[0].headers.Authorization: environment variable 'SURELY_UNSET_VARIABLE_FOR_TEST' is not set" in (
        done.stderr
    )


def test_per_caller_scope_without_a_trusted_caller_header_warns_at_start(
    spawn: Callable[..., ManagedProcess], tmp_path: Path
) -> None:
    """Behind the gateway such a source silently shared one session: now the log says so, loudly."""
    for name in ("untrusted", "trusted", "shared"):
        (tmp_path / name).mkdir()
    shared = start_adapter(spawn, tmp_path / "untrusted", [feature_stdio(scope="per-caller")])
    warning = "have scope: per-caller but server.trustCallerHeader is false"
    lines = [line for line in shared.process.log_text().splitlines() if warning in line]
    assert len(lines) == 1 and '"level": "warning"' in lines[0], shared.process.log_text()[-2000:]
    assert "sources feat " in lines[0]

    trusted = start_adapter(
        spawn, tmp_path / "trusted", [feature_stdio(scope="per-caller")], server={"trustCallerHeader": True}
    )
    plain = start_adapter(spawn, tmp_path / "shared", [feature_stdio()])
    assert warning not in trusted.process.log_text() + plain.process.log_text()
