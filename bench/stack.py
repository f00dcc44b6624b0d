"""Start the components under test as real loopback processes and read their memory.

Every process started through a `Stack` is stopped when the stack closes, so a
failed section never leaves servers behind.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncpg
import httpx
import yaml

from tests.support.processes import ManagedProcess, free_port, start_process

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
HOST = "127.0.0.1"
ADMIN_TOKEN = secrets.token_urlsafe(24)
PEPPER = secrets.token_hex(24)
ADMIN_DSN = "postgresql://mcp_test:mcp_test@127.0.0.1:5432/postgres"
# Limits high enough never to refuse, low enough to be real numbers the store must check.
UNREACHED_RATE = {"perSecond": 1_000_000, "burst": 1_000_000}
UNREACHED_QUOTA = {"daily": 100_000_000, "monthly": 1_000_000_000}


def _python_path() -> str:
    """ROOT, behind another checkout's components when MCP_BENCH_CODE names one.

    `MCP_BENCH_CODE=/tmp/old-tree python -m bench` runs that tree's adapter and
    gateway under the same load generator and machine load (`bench.ab` runs both trees in one run).
    """
    return code_path(os.environ.get("MCP_BENCH_CODE"))


def code_path(tree: str | None) -> str:
    """The PYTHONPATH that runs `tree`'s adapter, gateway and common code (this checkout's when None)."""
    paths = [str(ROOT)]
    if tree:
        paths = [str(Path(tree) / part) for part in ("adapter", "gateway", "common")] + paths
    return os.pathsep.join(paths)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU time a process has used so far, from /proc; with `children`, plus its live
    child processes' (an adapter's stdio servers)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    if children:
        for child in _children(pid):
            total += cpu_seconds(child, children=True)
    return total


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        listed = task / "children"
        if listed.exists():
            found += [int(c) for c in listed.read_text().split()]
    return found


def rss_mb(pid: int) -> float:
    """Resident set size of one process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Stack:
    """The processes of one benchmark section."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.processes: list[ManagedProcess] = []
        self.workdir = Path(tempfile.mkdtemp(prefix=f"mcp-bench-{label}-"))

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        for process in reversed(self.processes):
            process.stop(grace=5)

    def start(
        self,
        name: str,
        cmd: list[str],
        ready_path: str,
        port: int,
        env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> int:
        env = {"PYTHONPATH": _python_path(), **(env or {})}
        ready = f"http://{HOST}:{port}{ready_path}"
        label = f"bench-{self.label}-{name}"
        process = start_process(cmd, name=label, env=env, ready_url=ready, timeout=timeout, cwd=str(ROOT))
        self.processes.append(process)
        return process.pid

    def python_module(self, name: str, module: str, *args: str, ready_path: str = "/") -> tuple[str, int]:
        """Run `python -m module PORT *args`; return its base URL and pid."""
        port = free_port()
        pid = self.start(name, [sys.executable, "-m", module, str(port), *args], ready_path, port)
        return f"http://{HOST}:{port}", pid

    def adapter(self, name: str, config: dict[str, Any], env: dict[str, str] | None = None) -> tuple[str, int]:
        """An `mcp-adapter` process; return its /mcp URL and pid."""
        path = self.workdir / f"adapter-{name}.yaml"
        path.write_text(yaml.safe_dump({"logLevel": "INFO", **config}, sort_keys=False))  # the default
        port = free_port()
        cmd = [sys.executable, "-m", "mcp_adapter.cli", "--config", str(path), "--port", str(port)]
        pid = self.start(name, cmd, "/readyz", port, env)
        return f"http://{HOST}:{port}/mcp", pid

    def gateway(
        self, name: str, routing: dict[str, Any], dsn: str | None = None, env: dict[str, str] | None = None
    ) -> Gateway:
        path = self.workdir / f"routing-{name}.yaml"
        path.write_text(yaml.safe_dump({"version": 1, **routing}, sort_keys=False))
        port = free_port()
        cmd = [sys.executable, "-m", "mcp_gateway.cli", "serve", "--config", str(path), "--port", str(port)]
        cmd += ["--log-level", "INFO"]  # the default: no line per call (refusals and errors only)
        if dsn:
            cmd += ["--database-url", dsn]
        env = {"MCP_GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN, "MCP_GATEWAY_KEY_PEPPER": PEPPER, **(env or {})}
        pid = self.start(name, cmd, "/readyz", port, env)
        return Gateway(f"http://{HOST}:{port}", pid)


class Gateway:
    def __init__(self, base: str, pid: int) -> None:
        self.base = base
        self.pid = pid

    def url(self, profile: str) -> str:
        return f"{self.base}/{profile}/mcp"

    def mint_key(self, tenant: str, profiles: list[str], labels: dict[str, str] | None = None) -> str:
        response = httpx.post(
            f"{self.base}/admin/v1/tenants/{tenant}/keys",
            json={"name": "bench", "profiles": profiles, "labels": labels or {}},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["key"])


class ThrowawayDatabase:
    """A fresh PostgreSQL database for one run, dropped afterwards."""

    def __init__(self) -> None:
        self.name = f"mcp_bench_{os.getpid()}_{secrets.token_hex(3)}"
        self.dsn = ADMIN_DSN.rsplit("/", 1)[0] + f"/{self.name}"

    def __enter__(self) -> ThrowawayDatabase:
        asyncio.run(self._admin(f'CREATE DATABASE "{self.name}" OWNER mcp_test'))
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))

    @staticmethod
    async def _admin(sql: str) -> None:
        conn = await asyncpg.connect(ADMIN_DSN, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()
