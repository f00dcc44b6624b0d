"""`make test`'s background tool build vs pytest-timeout: a late test waits for the build before
its own timeout starts, so a build slower than one test's timeout does not fail the late tests
(the session's `kube` fixture would otherwise time out once and error every test using it)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.support import tools

ROOT = Path(__file__).resolve().parents[2]

LATE_TEST = """
import os
from pathlib import Path

import pytest

Path(os.environ["MCP_TEST_BUILD_STATUS"] + ".collected").touch()  # the build ends 4 s after this


@pytest.mark.late_tools
def test_runs_once_the_build_is_done() -> None:
    assert Path(os.environ["MCP_TEST_BUILD_STATUS"]).exists()
"""


def test_a_late_test_waits_for_the_build_outside_its_timeout(tmp_path: Path) -> None:
    folder = ROOT / "tests" / "artifacts" / f"late-wait-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    (folder / "test_late.py").write_text(LATE_TEST)
    status = tmp_path / "build-tools.status"

    def finish_build() -> None:
        collected = Path(f"{status}.collected")
        deadline = time.monotonic() + 100
        while not collected.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(4)  # longer than the inner run's --timeout
        status.write_text("0\n")

    builder = threading.Thread(target=finish_build)
    builder.start()
    try:
        env = {**os.environ, "MCP_TEST_BUILD_STATUS": str(status)}
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=2", str(folder)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        builder.join()
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout


def test_a_tool_built_early_is_not_held_back_by_the_rest_of_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keycloak is built first, in about a minute; its tests start it as soon as its link exists,
    while the Go builds and images after it still run (a fresh machine's whole build took over
    45 minutes once on a loaded machine, and Keycloak's start, waiting for all of it, failed)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    status = tmp_path / "build-tools.status"  # never written: the build is still running
    monkeypatch.setenv("MCP_TEST_BIN", str(bin_dir))
    monkeypatch.setenv("MCP_TEST_BUILD_STATUS", str(status))
    linker = threading.Timer(0.5, lambda: (bin_dir / "keycloak").symlink_to("/bin/true"))
    linker.start()
    try:
        assert tools.require_tool("keycloak", timeout=30) == bin_dir / "keycloak"
    finally:
        linker.join()
    assert not status.exists()
    with pytest.raises(RuntimeError, match="etcd was not built within 1s"):
        tools.require_tool("etcd", timeout=1)
