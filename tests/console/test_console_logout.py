"""Logging out ends the session on the server: a copy of the cookie taken before logout (a shared
computer, a proxy log, malware) is refused afterwards, on both stores and, with PostgreSQL, on
every replica: running ones hear of it, new ones read it from the database."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.console.support import Stack, csrf_of, start_stack
from tests.console.tokens import console_login, cookie_of, logged_in, mint_console_token, with_cookie
from tests.gateway.support import ADMIN_TOKEN, Spawn


def _log_out(stack: Stack, login: str) -> tuple[str, str]:
    """Log in with `login`, copy the cookie, log out; return the copied cookie and its CSRF token."""
    with console_login(stack, login) as user:
        page = user.get("/console/keys")
        assert logged_in(page)
        cookie, csrf = cookie_of(user), csrf_of(page.text)
        out = user.post("/console/logout", data={"csrf": csrf})
        assert out.status_code == 303 and out.headers["location"] == "/console/login"
        assert not logged_in(user.get("/console/keys"))
    return cookie, csrf


def _assert_refused(stack: Stack, cookie: str, csrf: str, tenant: str) -> None:
    with stack.gateway.admin() as admin:
        before = len(admin.get(f"/admin/v1/tenants/{tenant}/keys").json())
    with with_cookie(stack, cookie) as replay:
        page = replay.get("/console/keys")
        assert not logged_in(page), "the cookie still opens the console after logout"
        assert page.status_code == 303 and page.headers["location"] == "/console/login"
        minted = replay.post("/console/keys", data={"csrf": csrf, "tenant": tenant, "name": "after-logout"})
        assert minted.status_code in (303, 403), minted.status_code
    with stack.gateway.admin() as admin:
        assert len(admin.get(f"/admin/v1/tenants/{tenant}/keys").json()) == before


@pytest.mark.parametrize("backend", ["memory", "postgres"])
@pytest.mark.parametrize("who", ["operator", "tenant"])
def test_a_cookie_copied_before_logout_is_refused_after_it(
    backend: str, who: str, spawn: Spawn, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    dsn = request.getfixturevalue("pg_dsn") if backend == "postgres" else None
    stack = start_stack(spawn, tmp_path, dsn)
    login = ADMIN_TOKEN if who == "operator" else mint_console_token(stack, "acme")
    cookie, csrf = _log_out(stack, login)
    _assert_refused(stack, cookie, csrf, "acme")
    # Logging in again works, with a new session.
    with console_login(stack, login) as again:
        assert logged_in(again.get("/console/keys")) and cookie_of(again) != cookie


def test_a_logout_holds_on_every_replica(spawn: Spawn, tmp_path: Path, pg_dsn: str) -> None:
    first = start_stack(spawn, tmp_path, pg_dsn)
    token = mint_console_token(first, "acme")
    with console_login(first, token) as user:
        cookie = cookie_of(user)
    # Before logout the copy works anywhere; after it, nowhere.
    (tmp_path / "second").mkdir()
    second = start_stack(spawn, tmp_path / "second", pg_dsn)
    with with_cookie(second, cookie) as copy:
        assert logged_in(copy.get("/console/keys"))
    cookie_again, csrf = _log_out(first, token)
    (tmp_path / "third").mkdir()
    third = start_stack(spawn, tmp_path / "third", pg_dsn)
    for stack in (first, third):
        _assert_refused(stack, cookie_again, csrf, "acme")
    # A replica running during the logout hears of it through the database (LISTEN/NOTIFY).
    _wait_until_refused(second, cookie_again)
    _assert_refused(second, cookie_again, csrf, "acme")


def _wait_until_refused(stack: Stack, cookie: str) -> None:
    """Wait (bounded) for a replica to receive a logout made on another one."""
    deadline = time.monotonic() + 15
    with with_cookie(stack, cookie) as copy:
        while logged_in(copy.get("/console/keys")):
            assert time.monotonic() < deadline, "the running replica never heard of the logout"
            time.sleep(0.1)
