"""The console's safety defaults over plain HTTP against a real gateway: security headers,
cookie flags, CSRF on every form, secrets kept out of URLs and logs."""

from __future__ import annotations

import httpx

from tests.console.support import Stack, csrf_of, http_login
from tests.gateway.support import ADMIN_TOKEN


def key_count(stack: Stack, tenant: str) -> int:
    with stack.gateway.admin() as admin:
        return len(admin.get(f"/admin/v1/tenants/{tenant}/keys").json())


def test_headers_cookie_flags_and_login_redirect(stack: Stack) -> None:
    with httpx.Client(base_url=stack.base, timeout=20) as http:
        anonymous = http.get("/console/keys")
        assert anonymous.status_code == 303 and anonymous.headers["location"] == "/console/login"
        page = http.get("/console/login")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    assert "<script>" not in page.text.replace('<script src="/console/static/console.js" defer></script>', "")
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
    assert "secure" not in cookie.split(";", 1)[1]

    # Behind a TLS-terminating proxy (X-Forwarded-Proto from a trusted address) the cookie is Secure.
    behind_tls = httpx.get(f"{stack.base}/console/login", headers={"X-Forwarded-Proto": "https"}, timeout=20)
    assert "secure" in behind_tls.headers["set-cookie"].lower().split(";", 1)[1]

    script = httpx.get(f"{stack.base}/console/static/console.js", timeout=20)
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    for bad in ("/console/static/session.py", "/console/static/..%2Froutes.py", "/console/static/__init__.py"):
        assert httpx.get(f"{stack.base}{bad}", timeout=20).status_code == 404, bad


def test_every_form_needs_the_sessions_csrf_token(stack: Stack) -> None:
    with httpx.Client(base_url=stack.base, timeout=20) as stranger:
        # No cookie, or a token from another session: refused before the admin token is even looked at.
        assert stranger.post("/console/login", data={"token": ADMIN_TOKEN}).status_code == 403
        other_csrf = csrf_of(httpx.get(f"{stack.base}/console/login", timeout=20).text)
        stranger.get("/console/login")
        assert stranger.post("/console/login", data={"token": ADMIN_TOKEN, "csrf": other_csrf}).status_code == 403

    operator = http_login(stack, ADMIN_TOKEN)
    try:
        good = csrf_of(operator.get("/console/keys?tenant=acme").text)
        for path, data in (
            ("/console/keys", {"tenant": "acme", "name": "x"}),
            ("/console/console-tokens", {"tenant": "acme"}),
            ("/console/logout", {}),
        ):
            assert operator.post(path, data=data).status_code == 403, path
            assert operator.post(path, data={**data, "csrf": good[:-2] + "xx"}).status_code == 403, path
        assert key_count(stack, "acme") == 0
        created = operator.post("/console/keys", data={"tenant": "acme", "name": "ok", "csrf": good})
        assert created.status_code == 200 and key_count(stack, "acme") == 1
        assert created.headers["cache-control"] == "no-store"
        secret = created.text.split('id="secret">')[1].split("<")[0]

        # A wrong login attempt is refused with a page, and the attempted token is not logged.
        wrong = "mcpk_000000000000_not-a-real-secret-but-looks-like-one"
        with httpx.Client(base_url=stack.base, timeout=20) as http:
            csrf = csrf_of(http.get("/console/login").text)
            refused = http.post("/console/login", data={"token": wrong, "csrf": csrf})
        assert refused.status_code == 401 and "not valid" in refused.text

        log = stack.gateway.process.log_text()
        for value in (secret, ADMIN_TOKEN, wrong):
            assert value not in log
        assert "console created API key" in log
    finally:
        operator.close()
