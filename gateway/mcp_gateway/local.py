"""`make run`: the gateway on this machine, with the adapters and demo services
it fronts, from one file (`examples/local.yaml`). No Kubernetes, no database.

The file has three parts, started in this order:

- `services`: plain helper processes (the demo OpenAPI service), each with a
  `readyPath` to wait for;
- `adapters`: each becomes one `mcp-adapter` process; `config` is the adapter's
  own configuration format (see adapter/mcp_adapter/config.py);
- `gateway`: the gateway's routing config (docs/routing-config.md).

Placeholders are filled in before anything starts: `{python}` (this
interpreter), `{port:NAME}` (a free loopback port, the same for every use of
NAME) and `{adapter:NAME}` (that adapter's `/mcp` URL). Ctrl-C or SIGTERM stops
every process, children first, and leaves none behind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field

from mcp_gateway.config import RoutingConfig, parse_config

HOST = "127.0.0.1"
READY_TIMEOUT_SECONDS = 60.0
STOP_GRACE_SECONDS = 10.0


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ServiceSpec(_Model):
    name: str
    command: list[str] = Field(min_length=1)
    ready_path: str = Field(default="/", alias="readyPath")
    port: str = Field(description="the {port:NAME} placeholder value this service listens on")


class AdapterSpec(_Model):
    name: str
    config: dict[str, Any]


class LocalConfig(_Model):
    services: list[ServiceSpec] = Field(default_factory=list)
    adapters: list[AdapterSpec] = Field(default_factory=list)
    gateway: dict[str, Any]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Placeholders:
    """Fills `{python}`, `{port:NAME}` and `{adapter:NAME}` in any nested value."""

    ports: dict[str, int] = field(default_factory=dict)

    def port(self, name: str) -> int:
        if name not in self.ports:
            self.ports[name] = _free_port()
        return self.ports[name]

    def fill(self, value: Any) -> Any:
        if isinstance(value, str):
            value = value.replace("{python}", sys.executable)
            value = re.sub(r"\{port:([\w.-]+)\}", lambda m: str(self.port(m.group(1))), value)
            return re.sub(
                r"\{adapter:([\w.-]+)\}", lambda m: f"http://{HOST}:{self.port('adapter-' + m.group(1))}/mcp", value
            )
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        return value


class Supervisor:
    """Starts child processes in their own process groups and stops them all."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, cmd: Sequence[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("wb")
        process = subprocess.Popen(
            list(cmd), stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True
        )
        self.children.append((name, process))
        return process

    def wait_ready(self, name: str, process: subprocess.Popen[bytes], url: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with status {process.returncode}; see {self.log_dir / name}.log")
            try:
                if httpx.get(url, timeout=2).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} did not answer {url} within {READY_TIMEOUT_SECONDS:.0f}s")

    def first_exited(self) -> str | None:
        return next((name for name, p in self.children if p.poll() is not None), None)

    def stop_all(self) -> None:
        # Reverse order: the gateway goes first, so it stops taking calls before its upstreams go.
        for _, process in reversed(self.children):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for _, process in reversed(self.children):
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # whatever is left of the group, grandchildren too
            process.wait()


def load_local_config(path: Path, placeholders: Placeholders) -> tuple[LocalConfig, RoutingConfig]:
    raw = yaml.safe_load(path.read_text())
    local = LocalConfig.model_validate(placeholders.fill(raw))
    routing = parse_config(json.dumps(local.gateway))
    return local, routing


def _mint_key(base_url: str, admin_token: str, tenant: str, profile: str) -> str:
    response = httpx.post(
        f"{base_url}/admin/v1/tenants/{tenant}/keys",
        json={"name": "make-run", "profiles": [profile]},
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["key"])


def client_config(name: str, url: str, key: str | None) -> dict[str, Any]:
    """The `mcpServers` entry that streamable-HTTP MCP clients accept."""
    server: dict[str, Any] = {"type": "http", "url": url}
    if key:
        server["headers"] = {"Authorization": f"Bearer {key}"}
    return {"mcpServers": {name: server}}


def run(config_path: Path, port: int) -> int:
    placeholders = Placeholders()
    local, routing = load_local_config(config_path, placeholders)
    workdir = Path(tempfile.mkdtemp(prefix="mcp-gateway-local-"))
    supervisor = Supervisor(workdir)
    stop_requested = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    base_url = f"http://{HOST}:{port}"
    try:
        for service in local.services:
            process = supervisor.start(service.name, service.command)
            supervisor.wait_ready(service.name, process, f"http://{HOST}:{service.port}{service.ready_path}")
        for adapter in local.adapters:
            adapter_port = placeholders.port(f"adapter-{adapter.name}")
            adapter_file = workdir / f"adapter-{adapter.name}.yaml"
            adapter_file.write_text(yaml.safe_dump(adapter.config))
            cmd = [sys.executable, "-m", "mcp_adapter.cli", "--config", str(adapter_file), "--port", str(adapter_port)]
            process = supervisor.start(f"adapter-{adapter.name}", cmd, {"PYTHONPATH": str(Path.cwd())})
            supervisor.wait_ready(f"adapter-{adapter.name}", process, f"http://{HOST}:{adapter_port}/readyz")
        routing_file = workdir / "routing.yaml"
        routing_file.write_text(yaml.safe_dump(local.gateway))
        admin_token = secrets.token_urlsafe(32)
        gateway = supervisor.start(
            "gateway",
            [sys.executable, "-m", "mcp_gateway.cli", "serve", "--config", str(routing_file), "--port", str(port)],
            {"MCP_GATEWAY_ADMIN_TOKEN": admin_token, "MCP_GATEWAY_KEY_PEPPER": secrets.token_hex(32)},
        )
        supervisor.wait_ready("gateway", gateway, f"{base_url}/readyz")
        _print_banner(routing, base_url, admin_token, workdir)
        while not stop_requested:
            exited = supervisor.first_exited()
            if exited:
                print(f"\n{exited} stopped unexpectedly; see {workdir / exited}.log", file=sys.stderr)
                return 1
            time.sleep(0.3)
        print("\nstopping...", file=sys.stderr)
        return 0
    except RuntimeError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 1
    finally:
        supervisor.stop_all()


def _print_banner(routing: RoutingConfig, base_url: str, admin_token: str, workdir: Path) -> None:
    print("\nmcp-gateway is running (local mode: no Kubernetes, in-process state)\n")
    for profile in routing.profiles:
        url = f"{base_url}/{profile.id}/mcp"
        with_key = "apiKey" in profile.auth.accepted
        key = _mint_key(base_url, admin_token, profile.tenant, profile.id) if with_key else None
        print(f"  endpoint   {url}")
        if key:
            print(f"  API key    {key}   (shown once; send it as 'Authorization: Bearer <key>')")
        print("  client config (paste into an MCP client that speaks streamable HTTP):")
        snippet = json.dumps(client_config(f"mcp-gateway-{profile.id}", url, key), indent=2)
        print("    " + snippet.replace("\n", "\n    "))
        print()
    print(f"  console    {base_url}/console/  (open it in a browser; log in with the admin token below)")
    print(f"  admin API  {base_url}/admin/v1  (bearer token {admin_token})")
    print(f"  metrics    {base_url}/metrics  (same bearer token)")
    print(f"  logs       {workdir}/")
    print("\nPress Ctrl-C to stop.", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mcp-gateway-local", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--config", default="examples/local.yaml")
    parser.add_argument("--port", type=int, default=int(os.environ.get("MCP_GATEWAY_PORT", "8080")))
    args = parser.parse_args(argv)
    return run(Path(args.config), args.port)


if __name__ == "__main__":
    sys.exit(main())
