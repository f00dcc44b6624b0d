"""Binaries built from Go modules (scripts/build-tools.sh), looked up for the tests.

`make test` builds them in the background while the tests that need none of them run
(they are ordered last, see tests/conftest.py), so a fresh machine does not wait for
several minutes of compiling before the first test. A test that needs a tool waits here,
bounded, for that background build to finish.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

# How long a test waits for the background build: a fresh machine's first build of every
# tool takes well under this on 2 cores.
BUILD_WAIT_SECONDS = 45 * 60


def tool_bin_dir() -> Path:
    return Path(os.environ.get("MCP_TEST_BIN", Path.home() / ".cache" / "mcp-gateway" / "bin"))


def _build_status_file() -> Path | None:
    value = os.environ.get("MCP_TEST_BUILD_STATUS")
    return Path(value) if value else None


def wait_for_background_build(timeout: float = BUILD_WAIT_SECONDS) -> None:
    """Block until `make test`'s background build has finished; no-op outside `make test`."""
    status = _build_status_file()
    if status is None:
        return
    deadline = time.monotonic() + timeout
    while not status.exists():
        if time.monotonic() > deadline:
            log = status.with_suffix(".log")
            raise RuntimeError(f"the background tool build did not finish in {timeout:.0f}s; see {log}")
        time.sleep(1)


def require_tool(name: str, timeout: float = BUILD_WAIT_SECONDS) -> Path:
    """Path of a built tool, waiting for it if `make test`'s background build is still running.

    Waits for this tool only: the build links each tool under its stable name as soon as that
    tool is complete, so e.g. Keycloak (built first, in about a minute) is not held back by the
    Go builds and image builds after it.
    """
    path = tool_bin_dir() / name
    status = _build_status_file()
    deadline = time.monotonic() + timeout
    while not path.exists() and status is not None and not status.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} was not built within {timeout:.0f}s{_build_log_tail()}")
        time.sleep(1)
    if not path.exists():
        hint = _build_log_tail()
        raise RuntimeError(f"{path} is missing: run scripts/build-tools.sh (make test does) to build it{hint}")
    return path


def _build_log_tail(lines: int = 20) -> str:
    status = _build_status_file()
    log = status.with_suffix(".log") if status else None
    if log is None or not log.exists():
        return ""
    tail = log.read_text(errors="replace").splitlines()[-lines:]
    return "\nlast lines of the build log:\n" + "\n".join(tail)
