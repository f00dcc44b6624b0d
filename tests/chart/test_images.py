"""Container images, checked offline: there is no container engine here, so these
tests read the Dockerfiles (they cannot prove an image builds). They do check what a
reviewer would: multi-stage, pinned bases, a non-root user, no build tools or pip at
run time, entry points that exist, sources that exist and survive .dockerignore."""

from __future__ import annotations

import re
import tomllib

import pytest

from tests.chart.dockerfile import Dockerfile, parse
from tests.chart.support import REPO

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
