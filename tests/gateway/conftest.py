"""Fixtures for gateway tests: one feature server shared per test, config files in tmp_path."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import conftest as root_conftest
from tests.gateway.support import Spawn, start_feature, write_config


@pytest.fixture(scope="module")
def spawn_module() -> Iterator[Spawn]:
    """The root `spawn` fixture (tests/conftest.py), scoped to a module: processes its tests share."""
    yield from inspect.unwrap(root_conftest.spawn)()


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
