"""The pod tests' node (tests/support/node.py): started once per session, torn down fully."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.node import Node, start_node


@pytest.fixture(scope="session")
def node() -> Iterator[Node]:
    started = start_node()
    yield started
    started.stop()
