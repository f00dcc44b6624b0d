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


def require_tool(name: str) -> Path:
    """Path of a built tool, waiting for the background build if `make test` started one."""
    path = tool_bin_dir() / name
    if not path.exists():
        wait_for_background_build()
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
