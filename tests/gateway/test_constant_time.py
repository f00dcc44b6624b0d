"""Secrets are compared in constant time. No behavioural test can see `==` instead of
`hmac.compare_digest` (both give the same answers; only the timing differs), so these unit
tests guard the call itself: each comparison of a caller-supplied secret must go through
`hmac.compare_digest` with the candidate as an argument, and its result must decide.

Covered: API key hashes, the admin API token, console login with the admin token, the
console's admin fingerprint, console session cookies, the console's CSRF field, signed
Mcp-Session-Id tokens, and the connection pages' browser nonce and CSRF field.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any, cast

import pytest
from mcp_gateway.admin import admin_refusal
from mcp_gateway.auth.apikeys import KeyHasher
from mcp_gateway.connections import web as connections_web
from mcp_gateway.console import access
from mcp_gateway.console.session import Session, SessionCodec
from mcp_gateway.console.web import Ctx, Refused, read_form
from mcp_gateway.sessions import SessionSigner
from starlette.requests import Request

ADMIN = "admin-token-0123456789abcdef"


class Spy:
    """Records every `hmac.compare_digest` call; `verdict` (if set) replaces its answer."""

    def __init__(self, real: Callable[[Any, Any], bool]) -> None:
        self.real = real
        self.calls: list[tuple[Any, Any]] = []
        self.verdict: bool | None = None

    def __call__(self, a: Any, b: Any) -> bool:
        self.calls.append((a, b))
        return self.real(a, b) if self.verdict is None else self.verdict

    def saw(self, value: str | bytes) -> bool:
        """Whether `value` (str or its UTF-8 bytes) was one side of a comparison."""
        forms = {value, value.encode() if isinstance(value, str) else value.decode()}
        return any(a in forms or b in forms for a, b in self.calls)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Spy]:
    recorder = Spy(hmac.compare_digest)
    monkeypatch.setattr(hmac, "compare_digest", recorder)
    yield recorder


def fake_gateway(admin_token: str = ADMIN) -> Any:
    return SimpleNamespace(admin_token=admin_token, revoked=set())  # no console session logged out


def test_api_key_hash(spy: Spy) -> None:
    hasher = KeyHasher(b"pepper-0123456789abcdef")
    stored = hasher.hash("mcpk_abc_secret")
    assert hasher.matches("mcpk_abc_secret", stored)
    assert spy.saw(stored)
    spy.verdict = False  # the comparison's answer is the one used
    assert not hasher.matches("mcpk_abc_secret", stored)


def test_admin_api_token(spy: Spy) -> None:
    assert admin_refusal(fake_gateway(), f"Bearer {ADMIN}") is None
    assert spy.saw("wrong") is False and spy.saw(ADMIN)
    refused = admin_refusal(fake_gateway(), "Bearer wrong")
    assert refused is not None and refused.status_code == 401
    assert spy.saw("wrong")
    spy.verdict = True
    assert admin_refusal(fake_gateway(), "Bearer wrong") is None


async def test_console_login_with_the_admin_token(spy: Spy) -> None:
    codec = SessionCodec([b"k" * 32])
    session = await access.login(fake_gateway(), codec, ADMIN)
    assert session is not None and session.role == "admin"
    assert spy.saw(ADMIN)


async def test_console_admin_fingerprint(spy: Spy) -> None:
    codec = SessionCodec([b"k" * 32])
    session = Session(role="admin", admin_fp=codec.fingerprint(ADMIN), expires=time.time() + 60)
    viewer = await access.viewer_of(fake_gateway(), codec, session)
    assert viewer is not None and viewer.role == "admin"
    assert spy.saw(session.admin_fp or "")
    spy.verdict = False
    assert await access.viewer_of(fake_gateway(), codec, session) is None


def test_console_session_cookie(spy: Spy) -> None:
    codec = SessionCodec([b"k" * 32])
    cookie = codec.encode(Session(role="admin", expires=time.time() + 60))
    assert codec.decode(cookie) is not None
    assert spy.saw(cookie.rsplit(".", 1)[1])
    spy.verdict = False
    assert codec.decode(cookie) is None


async def test_console_csrf_field(spy: Spy) -> None:
    session = Session(role="admin", expires=time.time() + 60)
    ctx = Ctx(cast(Any, fake_gateway()), SessionCodec([b"k" * 32]), session, None, fresh=False)
    form = await read_form(form_request(f"csrf={session.csrf}"), ctx)
    assert form["csrf"] == session.csrf
    assert spy.saw(session.csrf)
    with pytest.raises(Refused):
        await read_form(form_request("csrf=forged"), ctx)
    assert spy.saw("forged")
    spy.verdict = True
    await read_form(form_request("csrf=forged"), ctx)


def test_signed_session_id(spy: Spy) -> None:
    signer = SessionSigner([b"s" * 32])
    token = signer.issue("profile", "key:1", "2025-11-25", "nonce")
    assert signer.verify(token) is not None
    assert spy.saw(token.rsplit(".", 1)[1])
    spy.verdict = False
    assert signer.verify(token) is None


class SealedByName:
    """Stands in for the gateway's `Connections`: a sealed value "opens" to the body registered under
    its name (the AES-GCM sealing itself is tested in tests/connections)."""

    def __init__(self, **bodies: dict[str, Any]) -> None:
        self.bodies = bodies
        self.revoked: list[Any] = []
        self.events: list[str] = []

    def open(self, sealed: str, aad: bytes) -> dict[str, Any]:
        if sealed not in self.bodies:
            raise ValueError("unreadable")
        return self.bodies[sealed]

    async def revoke(self, key: Any, settings: Any) -> bool:
        self.revoked.append(key)
        return True

    def counted(self, event: str, key: Any, outcome: str = "") -> None:
        self.events.append(event)


def connections_gateway(connections: SealedByName) -> Any:
    config = SimpleNamespace(profile=lambda _pid: None)
    return SimpleNamespace(connections=connections, holder=SimpleNamespace(config=config))


async def test_connect_callback_browser_nonce(spy: Spy) -> None:
    gateway = connections_gateway(SealedByName(state={"s": "in", "n": "nonce-of-this-browser"}))

    async def callback(cookie: str) -> Refused:
        request = form_request("", gateway, cookie=f"{connections_web.NONCE_COOKIE}={cookie}")
        with pytest.raises(Refused) as refused:
            await connections_web.callback(request, state="state", error="access_denied")
        return refused.value

    assert "did not authorize" in (await callback("nonce-of-this-browser")).message  # past the nonce check
    assert spy.saw("nonce-of-this-browser")
    assert "another browser" in (await callback("other-browser")).message
    assert spy.saw("other-browser")
    spy.verdict = True
    assert "did not authorize" in (await callback("other-browser")).message


async def test_connections_revoke_csrf_field(spy: Spy) -> None:
    user = {"t": "acme", "c": "sub:alice", "x": "csrf-of-this-user"}
    gateway = connections_gateway(SealedByName(user=user))
    cookie = f"{connections_web.USER_COOKIE}=user"
    body = "profile=p&upstream=crm&csrf="
    response = await connections_web.revoke(form_request(body + "csrf-of-this-user", gateway, cookie=cookie))
    assert response.status_code == 303 and len(gateway.connections.revoked) == 1
    assert gateway.connections.events == ["revoke"]
    assert spy.saw("csrf-of-this-user")
    with pytest.raises(Refused):
        await connections_web.revoke(form_request(body + "forged", gateway, cookie=cookie))
    assert spy.saw("forged") and len(gateway.connections.revoked) == 1
    spy.verdict = True
    await connections_web.revoke(form_request(body + "forged", gateway, cookie=cookie))
    assert len(gateway.connections.revoked) == 2


def form_request(body: str, gateway: Any = None, cookie: str = "") -> Request:
    """A POST carrying an urlencoded form, as the console's handlers receive it (and the app's gateway)."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body.encode(), "more_body": False}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/console",
        "headers": [(b"content-type", b"application/x-www-form-urlencoded"), (b"cookie", cookie.encode())],
        "query_string": b"",
        "app": SimpleNamespace(state=SimpleNamespace(gateway=gateway)),
    }
    return Request(scope, receive)
