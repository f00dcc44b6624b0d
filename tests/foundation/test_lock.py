"""The dependency locks (requirements/*.txt, written by scripts/lock.sh) match pyproject.toml.

A dependency added to or tightened in pyproject.toml without re-locking fails here, as does a
lock entry without hashes (pip's --require-hashes would refuse the whole install)."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
LOCKS = {"runtime": REPO / "requirements" / "runtime.txt", "dev": REPO / "requirements" / "dev.txt"}
LOCKED_EXTRAS = {"runtime": set(), "dev": {"test", "demo"}}  # `bench` is a tool, installed by hand
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s\\;]+)")


def _pins(lock: Path) -> dict[str, tuple[str, int]]:
    """Package -> (version, number of hashes) of a pip-compile output."""
    pins: dict[str, tuple[str, int]] = {}
    current = ""
    for line in lock.read_text().splitlines():
        if match := PIN.match(line):
            current = canonicalize_name(match.group(1))
            pins[current] = (match.group(2), 0)
        elif "--hash=sha256:" in line and current:
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
    return pins


def _requirements(extras: set[str]) -> list[Requirement]:
    wanted = [Requirement(r) for r in PYPROJECT["dependencies"]]
    for extra in sorted(extras):
        wanted += [Requirement(r) for r in PYPROJECT["optional-dependencies"][extra]]
    return wanted


@pytest.mark.parametrize("kind", sorted(LOCKS))
def test_lock_pins_every_dependency_within_its_range_with_hashes(kind: str) -> None:
    pins = _pins(LOCKS[kind])
    assert pins, f"{LOCKS[kind]} pins nothing"
    for requirement in _requirements(LOCKED_EXTRAS[kind]):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in {LOCKS[kind].name}: run scripts/lock.sh"
        version = pins[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{LOCKS[kind].name} pins {name}=={version}, outside pyproject.toml's {requirement}: run scripts/lock.sh"
        )
    unhashed = sorted(name for name, (_, hashes) in pins.items() if hashes == 0)
    assert not unhashed, f"entries without hashes: {unhashed}"


def test_lock_extras_are_the_ones_pyproject_declares() -> None:
    header = LOCKS["dev"].read_text().split("\n\n", 1)[0]
    assert set(re.findall(r"--extra=(\w+)", header)) == LOCKED_EXTRAS["dev"]
    assert LOCKED_EXTRAS["dev"] <= set(PYPROJECT["optional-dependencies"])


def test_runtime_lock_agrees_with_the_dev_lock() -> None:
    """The images (runtime.txt) run the versions the tests ran (dev.txt)."""
    runtime, dev = _pins(LOCKS["runtime"]), _pins(LOCKS["dev"])
    differing = {n: (v, dev.get(n, ("missing",))[0]) for n, (v, _) in runtime.items() if dev.get(n, ("",))[0] != v}
    assert not differing, f"runtime.txt vs dev.txt: {differing}"


def test_this_environment_runs_the_locked_versions() -> None:
    """scripts/setup-python.sh (make run, make test) installed exactly the dev lock."""
    drifted = {}
    for name, (version, _) in _pins(LOCKS["dev"]).items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "missing"
        if installed != version:
            drifted[name] = (version, installed)
    assert not drifted, f"locked vs installed: {drifted}; run scripts/setup-python.sh"
