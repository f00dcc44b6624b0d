"""Console logins over plain HTTP for the session-security tests: console tokens, cookies, forged cookies."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict

import httpx
from mcp_gateway.console.session import COOKIE, Session

from tests.console.support import Stack, csrf_of, http_login
from tests.gateway.support import ADMIN_TOKEN


@contextmanager
def console_login(stack: Stack, token: str) -> Iterator[httpx.Client]:
    """An HTTP client logged in to the console with `token`, closed afterwards."""
    client = http_login(stack, token)
    try:
        yield client
    finally:
        client.close()


def mint_console_token(stack: Stack, tenant: str) -> str:
    """A fresh console token of `tenant`, minted by an operator through the console."""
    with console_login(stack, ADMIN_TOKEN) as operator:
        csrf = csrf_of(operator.get(f"/console/keys?tenant={tenant}").text)
        created = operator.post("/console/console-tokens", data={"csrf": csrf, "tenant": tenant, "name": "t"})
    assert created.status_code == 200, created.text
    return created.text.split('id="secret">')[1].split("<")[0]


def cookie_of(client: httpx.Client) -> str:
    value = client.cookies.get(COOKIE)
    assert value, "the console set no session cookie"
    return value


def with_cookie(stack: Stack, cookie: str) -> httpx.Client:
    """A client that only replays `cookie` (as an attacker holding a copy of it would)."""
    return httpx.Client(base_url=stack.base, timeout=20, cookies={COOKIE: cookie})


def forge(session: Session, key: bytes) -> str:
    """A cookie for `session` signed with `key` the way the console signs its cookies (HMAC-SHA256)."""
    payload = base64.urlsafe_b64encode(json.dumps(asdict(session), separators=(",", ":")).encode()).rstrip(b"=")
    signature = base64.urlsafe_b64encode(hmac.new(key, payload, hashlib.sha256).digest()).rstrip(b"=")
    return f"{payload.decode()}.{signature.decode()}"


def logged_in(response: httpx.Response) -> bool:
    """True when a console page was served to a logged-in viewer (not a redirect to the login page)."""
    return response.status_code == 200 and 'action="/console/logout"' in response.text
