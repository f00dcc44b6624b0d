"""Start real processes for tests and stop them cleanly.

Output goes to files under tests/artifacts/ so a failing test can be read
after the fact, and so tests can grep logs (e.g. for leaked secrets).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0, *, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll `url` until it answers with a status below 500."""
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code < 500:
                return
            last_error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last_error = repr(exc)
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {last_error}")


class ManagedProcess:
    """A child process whose output is captured to a log file."""

    def __init__(self, name: str, cmd: Sequence[str], env: dict[str, str] | None, cwd: str | None) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = ARTIFACTS / f"{name}-{os.getpid()}-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        full_env = {**os.environ, **(env or {})}
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        # A process group of its own, so stop() also reaches grandchildren.
        self.popen = subprocess.Popen(
            list(cmd), stdout=self._log, stderr=subprocess.STDOUT, env=full_env, cwd=cwd, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole group: a crash, not a shutdown."""
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def stop(self, grace: float = 10.0) -> int | None:
        if self.alive():
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
            except ProcessLookupError:
                pass
        # Reap anything left in the group (children that ignored SIGTERM).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self._log.close()
        return self.popen.returncode


def start_process(
    cmd: Sequence[str],
    *,
    name: str,
    env: dict[str, str] | None = None,
    ready_url: str | None = None,
    timeout: float = 30.0,
    cwd: str | None = None,
) -> ManagedProcess:
    """Start `cmd`; when `ready_url` is given, wait until it answers."""
    process = ManagedProcess(name, cmd, env, cwd)
    if ready_url:
        try:
            wait_http(ready_url, timeout, process=process.popen)
        except Exception as exc:
            process.stop(grace=2)
            tail = process.log_text()[-4000:]
            raise RuntimeError(f"{name} did not become ready: {exc}\n--- log ---\n{tail}") from exc
    return process
