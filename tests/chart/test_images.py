"""Container images. Offline, the Dockerfiles are read for what a reviewer would check:
multi-stage, pinned bases, a non-root user, no build tools or pip at run time, entry points
that exist, sources that exist and survive .dockerignore.

The `images` tests run the images `make images` built (podman; not in the default run until
the suite builds images itself: `pytest -m images tests/chart/test_images.py`), under the
chart's container security settings: read-only root, uid 10001, all capabilities dropped,
no privilege escalation, /tmp the only writable path. They use the host's network, so every
server binds to a free loopback port."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import tomllib
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from tests.chart.dockerfile import Dockerfile, parse
from tests.chart.support import REPO
from tests.support.processes import free_port

COMPONENTS = {"gateway": "mcp-gateway", "operator": "mcp-operator", "adapter": "mcp-adapter"}
# An exact version tag (x.y.z...) or a digest: never `latest` or a floating `3.11-slim`.
PINNED = re.compile(r"^[\w./-]+(:\d+\.\d+\.\d+[\w.-]*)?(@sha256:[a-f0-9]{64})?$")
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make ", "clang", "git ", "curl ", "wget ")


def dockerfile(component: str) -> Dockerfile:
    return parse(REPO / "docker" / f"{component}.Dockerfile")


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_images_are_multi_stage_from_pinned_bases(component: str) -> None:
    parsed = dockerfile(component)
    assert len(parsed.stages) >= 2, "build and runtime must be separate stages"
    stage_names = {s.name for s in parsed.stages if s.name}
    for stage in parsed.stages:
        if stage.image in stage_names:
            continue
        assert "$" not in stage.image, f"unresolved ARG in FROM {stage.image}"
        assert PINNED.match(stage.image) and (":" in stage.image or "@" in stage.image), (
            f"base image {stage.image} is not pinned to an exact version or digest"
        )


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_runtime_stage_runs_as_non_root_without_build_tools(component: str) -> None:
    final = dockerfile(component).final
    users = final.all("USER")
    assert users, "the runtime stage sets no USER: it would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {users[-1]} must be a numeric non-root uid (runAsNonRoot checks it)"
    # The chart's pod securityContext runs as 10001: keep the image's user the same.
    assert users[-1] == "10001:10001"
    for command in final.all("RUN"):
        assert "apt-get install" not in command and "pip install" not in command, command
        assert not any(tool in command for tool in BUILD_TOOLS), command


@pytest.mark.parametrize(("component", "script"), sorted(COMPONENTS.items()))
def test_entrypoint_is_the_components_console_script(component: str, script: str) -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert script in scripts
    entrypoint = dockerfile(component).final.all("ENTRYPOINT")[-1]
    assert entrypoint == f'["{script}"]'


def dockerignore_allows(path: str) -> bool:
    allowed = [
        line[1:].rstrip("/*") for line in (REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")
    ]
    return any(path == a or path.startswith(a + "/") for a in allowed)


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_build_context_sources_exist_and_are_not_ignored(component: str) -> None:
    for stage in dockerfile(component).stages:
        for args in stage.all("COPY"):
            if args.startswith("--from"):
                continue
            *sources, _dest = args.split()
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: missing from the repository"
                assert dockerignore_allows(source), f"COPY {source}: excluded by .dockerignore"


def test_adapter_image_carries_node_and_uv_and_a_writable_home() -> None:
    parsed = dockerfile("adapter")
    node_version = parsed.args["NODE_VERSION"]
    versions = dict(
        line.split("=", 1) for line in (REPO / "scripts" / "versions.env").read_text().splitlines() if "=" in line
    )
    assert versions["NODE22_PACKAGE"].endswith(f"@{node_version}"), "keep NODE_VERSION equal to scripts/versions.env"
    assert any(s.image.startswith(f"node:{node_version}-") for s in parsed.stages)
    final = parsed.final
    copies = " ".join(final.all("COPY"))
    assert "/usr/local/bin/node" in copies and "node_modules/npm" in copies
    assert any("npx-cli.js /usr/local/bin/npx" in run for run in final.all("RUN"))
    build = next(s for s in parsed.stages if s.name == "build")
    assert any('"uv==' in run for run in build.all("RUN")), "uv (uvx) comes from the build stage's venv"
    env = " ".join(final.all("ENV"))
    # The chart mounts only /tmp writable: npm's and uv's caches must live there.
    for variable in ("HOME=/tmp", "npm_config_cache=/tmp/", "UV_CACHE_DIR=/tmp/"):
        assert variable in env


IMAGE_TAG = os.environ.get("MCP_TEST_IMAGE_TAG", "dev")
# The chart's securityContext, as podman flags.
SECURE = ["--read-only", "--tmpfs", "/tmp", "--user", "10001:10001", "--cap-drop", "ALL"]
SECURE += ["--security-opt", "no-new-privileges"]


def podman(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    engine = shutil.which("podman")
    assert engine, "podman is missing: run scripts/setup-containers.sh, then make images"
    return subprocess.run([engine, *args], capture_output=True, text=True, timeout=timeout, check=False)


def built(component: str) -> str:
    image = f"ghcr.io/mcp-gateway/mcp-{component}:{IMAGE_TAG}"
    assert podman("image", "exists", image).returncode == 0, f"{image} is not built: run `make images`"
    return image


def wait_json(url: str, container: str, timeout: float = 90) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(url, timeout=2)
            if answer.status_code == 200:
                return dict(answer.json())
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    logs = podman("logs", container).stderr[-3000:]
    raise AssertionError(f"{url} did not answer 200 within {timeout}s; container log:\n{logs}")


@pytest.mark.images
@pytest.mark.parametrize(("component", "script"), sorted(COMPONENTS.items()))
def test_image_entry_point_starts_under_the_charts_security_settings(component: str, script: str) -> None:
    result = podman("run", "--rm", *SECURE, built(component), "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {script}"), result.stdout[:500]


@pytest.mark.images
def test_gateway_image_serves_on_loopback(tmp_path: Path) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(yaml.safe_dump({"version": 1, "tenants": [{"id": "acme"}], "profiles": []}))
    routing.chmod(0o644)
    port, name = free_port(), f"mcp-test-gateway-{uuid.uuid4().hex[:6]}"
    run = ["run", "-d", "--name", name, "--network", "host", *SECURE, "-v", f"{routing}:/config/routing.yaml:ro"]
    started = podman(*run, built("gateway"), "serve", "--config", "/config/routing.yaml", "--port", str(port))
    assert started.returncode == 0, started.stderr
    try:
        ready = wait_json(f"http://127.0.0.1:{port}/readyz", name)
        assert ready == {"status": "ready", "configGeneration": 1, "upstreams": {}}  # no upstreams configured
    finally:
        podman("rm", "-f", name)


@pytest.mark.images
def test_adapter_image_runs_a_stdio_server_and_node(tmp_path: Path) -> None:
    """The adapter image's entry point serves a stdio MCP server (the repository's demo notes server,
    run by the image's own Python and MCP SDK), and carries Node.js for npx-launched servers."""
    config = tmp_path / "adapter.yaml"
    source = {"name": "notes", "type": "stdio", "command": "python", "args": ["/demo/notes_server.py"]}
    config.write_text(yaml.safe_dump({"server": {"name": "image-test"}, "sources": [source]}))
    config.chmod(0o644)
    image = built("adapter")
    node = podman("run", "--rm", *SECURE, "--entrypoint", "node", image, "--version")
    assert node.returncode == 0 and node.stdout.startswith("v22."), node.stdout + node.stderr
    port, name = free_port(), f"mcp-test-adapter-{uuid.uuid4().hex[:6]}"
    run = ["run", "-d", "--name", name, "--network", "host", *SECURE]
    run += ["-v", f"{config}:/etc/mcp-adapter/adapter.yaml:ro", "-v", f"{REPO / 'examples' / 'demo'}:/demo:ro"]
    started = podman(
        *run, image, "--config", "/etc/mcp-adapter/adapter.yaml", "--host", "127.0.0.1", "--port", str(port)
    )
    assert started.returncode == 0, started.stderr
    try:
        ready = wait_json(f"http://127.0.0.1:{port}/readyz", name)
        assert ready["ready"] is True, json.dumps(ready)
    finally:
        podman("rm", "-f", name)
