"""Fixtures shared by every test area: real processes, real PostgreSQL, a real
Kubernetes control plane. See tests/support/ for how each is started."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import keycloak as keycloak_support
from tests.support import postgres
from tests.support.keycloak import Keycloak
from tests.support.kube import ControlPlane, start_control_plane
from tests.support.processes import ManagedProcess, start_process
from tests.support.tools import wait_for_background_build

# Tests that need a tool built from Go modules (kube-apiserver, helm, ...) or another
# late-built part. They run last so `make test` can build those tools in the background
# meanwhile (see tests/support/tools.py). Mark new ones `@pytest.mark.late_tools`.
_LATE_FIXTURES = frozenset({"kube", "keycloak"})
_LATE_DIRS = frozenset({"chart", "operator"})


def _needs_late_tools(item: pytest.Item) -> bool:
    if item.get_closest_marker("late_tools") is not None:
        return True
    if _LATE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return True
    return bool(_LATE_DIRS.intersection(item.path.relative_to(Path(__file__).parent).parts[:1]))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move tests that need late-built tools to the end (a stable sort keeps their order)."""
    items.sort(key=_needs_late_tools)
    if any("keycloak" in getattr(item, "fixturenames", ()) for item in items):
        keycloak_support.start_in_background()  # boots while the earlier tests run


def pytest_sessionfinish(session: pytest.Session) -> None:
    keycloak_support.stop_session_keycloak()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """A late test waits for the background build here, before pytest-timeout's timer starts: the
    build may outlast one test's timeout, and a session fixture (kube) failing once errors them all."""
    if _needs_late_tools(item):
        wait_for_background_build()
    yield


def _in_thread(fn: Callable[[], Any]) -> Any:
    """Run blocking setup off the event loop's thread (asyncpg needs a loop of its own)."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")


@pytest.fixture
def spawn() -> Iterator[Callable[..., ManagedProcess]]:
    """Start real processes (see start_process); all are stopped at teardown."""
    started: list[ManagedProcess] = []

    def _spawn(cmd: list[str], **kwargs: Any) -> ManagedProcess:
        process = start_process(cmd, **kwargs)
        started.append(process)
        return process

    yield _spawn
    for process in reversed(started):
        process.stop()


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """DSN of a brand-new, empty database, dropped after the test."""
    name, dsn = _in_thread(postgres.create_database)
    yield dsn
    _in_thread(lambda: postgres.drop_database(name))


@pytest.fixture(scope="session")
def kube() -> Iterator[ControlPlane]:
    """A real kube-apiserver + etcd + kube-controller-manager with our CRDs installed."""
    plane = start_control_plane()
    yield plane
    plane.stop()


@pytest.fixture(scope="session")
def keycloak() -> Keycloak:
    """A real OIDC provider (Keycloak) on loopback with the test realm (tests/data/keycloak);
    started in the background at collection, stopped when the session ends."""
    return keycloak_support.session_keycloak()
