"""Fixtures for gateway tests: one feature server shared per test, config files in tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.support import Spawn, start_feature, write_config
from tests.support.processes import ManagedProcess, start_process


@pytest.fixture(scope="module")
def spawn_module() -> Iterator[Spawn]:
    """Like `spawn`, for processes shared by the tests of one module (read-only scenarios)."""
    started: list[ManagedProcess] = []

    def _spawn(cmd: list[str], **kwargs: Any) -> ManagedProcess:
        process = start_process(cmd, **kwargs)
        started.append(process)
        return process

    yield _spawn
    for process in reversed(started):
        process.stop()


@pytest.fixture(scope="module")
def feature_module(spawn_module: Spawn) -> str:
    return start_feature(spawn_module)[1]


@pytest.fixture
def feature(spawn: Spawn) -> str:
    """URL of a fresh feature server (streamable HTTP, both eras)."""
    return start_feature(spawn)[1]


@pytest.fixture
def routing(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    path = tmp_path / "routing.yaml"

    def _write(data: dict[str, Any]) -> Path:
        return write_config(path, data)

    return _write
