"""Secrets from files (`MCP_GATEWAY_<NAME>_FILE`), as Compose secrets are mounted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mcp_gateway import secret_files


def test_a_secret_file_fills_its_variable_without_the_trailing_newline(tmp_path: Path) -> None:
    (tmp_path / "pepper").write_text("p3pper-value\n")
    env = {"MCP_GATEWAY_KEY_PEPPER_FILE": str(tmp_path / "pepper"), "MCP_GATEWAY_LOG_LEVEL_FILE": "/nope"}
    assert secret_files.load(env) == ["MCP_GATEWAY_KEY_PEPPER"]
    assert env["MCP_GATEWAY_KEY_PEPPER"] == "p3pper-value"
    assert "MCP_GATEWAY_LOG_LEVEL" not in env  # only secrets come from files


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MCP_GATEWAY_ADMIN_TOKEN": "x", "MCP_GATEWAY_ADMIN_TOKEN_FILE": "{dir}/t"}, "not both"),
        ({"MCP_GATEWAY_DATABASE_URL_FILE": "{dir}/missing"}, "cannot read {dir}/missing"),
        ({"MCP_GATEWAY_SESSION_KEYS_FILE": "{dir}/empty"}, "is empty"),
    ],
)
def test_a_bad_secret_file_is_a_clear_error(tmp_path: Path, env: dict[str, str], message: str) -> None:
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "t").write_text("token")
    env = {k: v.format(dir=tmp_path) for k, v in env.items()}
    with pytest.raises(secret_files.SecretFileError, match=message.format(dir=tmp_path)):
        secret_files.load(env)


def test_serve_refuses_an_unreadable_secret_file_at_start(tmp_path: Path) -> None:
    env = {**os.environ, "MCP_GATEWAY_ADMIN_TOKEN_FILE": str(tmp_path / "missing")}
    env.pop("MCP_GATEWAY_ADMIN_TOKEN", None)
    done = subprocess.run(
        [sys.executable, "-m", "mcp_gateway.cli", "serve", "--config", str(tmp_path / "r.yaml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "MCP_GATEWAY_ADMIN_TOKEN_FILE: cannot read" in done.stderr and "Traceback" not in done.stderr
