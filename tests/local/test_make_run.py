"""`make run`'s local mode, as a newcomer uses it: start it from examples/local.yaml,
take the printed key and URL, list and call tools with a real MCP client (the
official Inspector CLI and the Python SDK), then Ctrl-C and find no process left."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.support.conformance import CACHE, ensure_installed, node_bin
from tests.support.processes import ManagedProcess, free_port, start_process

REPO = Path(__file__).resolve().parents[2]
INSPECTOR = CACHE / "npm" / "inspector" / "node_modules" / ".bin" / "mcp-inspector"


@dataclass
class LocalRun:
    process: ManagedProcess
    url: str
    key: str


def _descendants(pid: int) -> set[int]:
    """Every live process whose ancestry leads to `pid` (children start their own sessions)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture(scope="module")
def local_run() -> Iterator[LocalRun]:
    port = free_port()
    process = start_process(
        [sys.executable, "-m", "mcp_gateway.local", "--config", "examples/local.yaml", "--port", str(port)],
        name="make-run",
        cwd=str(REPO),
        ready_url=f"http://127.0.0.1:{port}/readyz",
        timeout=90,
    )
    try:
        deadline = time.monotonic() + 30
        while "Press Ctrl-C" not in process.log_text():
            assert time.monotonic() < deadline, process.log_text()
            time.sleep(0.2)
        output = process.log_text()
        key = re.search(r"API key\s+(\S+)", output)
        url = re.search(r"endpoint\s+(\S+)", output)
        assert key and url, output
        yield LocalRun(process, url.group(1), key.group(1))
    finally:
        process.stop()


def _inspector(*args: str) -> subprocess.CompletedProcess[str]:
    ensure_installed()
    env = {**os.environ, "PATH": f"{node_bin()}:{os.environ['PATH']}", "HOME": str(CACHE / "inspector-home")}
    return subprocess.run(
        [str(INSPECTOR), "--cli", *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def test_banner_prints_a_ready_to_paste_client_config(local_run: LocalRun) -> None:
    output = local_run.process.log_text()
    config_text = output[output.index("{") : output.index("  console ")]
    config = json.loads(config_text)
    server = config["mcpServers"]["mcp-gateway-demo"]
    assert server == {"type": "http", "url": local_run.url, "headers": {"Authorization": f"Bearer {local_run.key}"}}


def test_banner_console_link_opens_the_console_and_the_printed_admin_token_logs_in(local_run: LocalRun) -> None:
    output = local_run.process.log_text()
    console = re.search(r"console\s+(\S+)", output)
    token = re.search(r"admin API\s+\S+\s+\(bearer token (\S+)\)", output)
    assert console and token, output
    assert "log in with the admin token" in output
    with httpx.Client(timeout=20) as client:
        form = client.get(console.group(1), follow_redirects=True)
        assert form.status_code == 200 and str(form.url).endswith("/console/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf, form.text
        login = client.post(str(form.url), data={"token": token.group(1), "csrf": csrf.group(1)})
        assert login.status_code == 303, login.text
        home = client.get(console.group(1))
        assert home.status_code == 200 and "Log out" in home.text, home.text


def test_inspector_cli_lists_and_calls_tools_with_the_printed_key(local_run: LocalRun) -> None:
    auth = f"Authorization: Bearer {local_run.key}"
    listed = _inspector(local_run.url, "--transport", "http", "--header", auth, "--method", "tools/list")
    assert listed.returncode == 0, listed.stderr
    names = {tool["name"] for tool in json.loads(listed.stdout)["tools"]}
    # One tool from each demo upstream: bundled stdio, bundled OpenAPI, third-party from PyPI.
    assert {"add_note", "get_item", "get_current_time"} <= names

    called = _inspector(
        local_run.url, "--transport", "http", "--header", auth,
        "--method", "tools/call", "--tool-name", "word_count", "--tool-arg", "text=one two three",
    )  # fmt: skip
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout)["content"][0]["text"] == "3"


def test_inspector_without_the_key_is_refused(local_run: LocalRun) -> None:
    refused = _inspector(local_run.url, "--transport", "http", "--method", "tools/list", "--stored-auth-only")
    assert refused.returncode != 0
    # The gateway's 401 explains what to send; the Inspector passes the message on.
    assert "this profile needs an API key" in refused.stdout + refused.stderr


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_python_sdk_client_calls_each_demo_upstream(local_run: LocalRun, mode: str) -> None:
    headers = {"Authorization": f"Bearer {local_run.key}"}
    async with (
        create_mcp_http_client(headers=headers) as http,
        Client(streamable_http_client(local_run.url, http_client=http), mode=mode) as client,
    ):
        item = await client.call_tool("get_item", {"sku": "NUT-M6"})
        assert item.structured_content == {"sku": "NUT-M6", "name": "Hex nut M6", "quantity": 380}
        missing = await client.call_tool("get_item", {"sku": "NOPE"})
        assert missing.is_error
        now = await client.call_tool("get_current_time", {"timezone": "UTC"})
        assert json.loads(now.content[0].text)["timezone"] == "UTC"  # type: ignore[union-attr]


def test_ctrl_c_stops_everything_and_leaves_no_process(local_run: LocalRun) -> None:
    runner = local_run.process
    children = _descendants(runner.pid)
    # services + adapter + its stdio children + gateway
    assert len(children) >= 5, children
    os.kill(runner.pid, signal.SIGINT)
    runner.popen.wait(timeout=30)
    assert runner.popen.returncode == 0
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in children if _alive(pid)]
    assert "stopping" in runner.log_text()
