"""Console and admin request bodies are capped before anything parses them (issue 13, F3).

An unauthenticated console form used to be parsed whole before its CSRF token was checked:
one POST of many 1 MiB fields made the gateway buffer them all, and a single 10 MB field came
back as a 500 with a traceback in the log. Bodies over gateway.maxAdminRequestBytes now get
413, client errors stay 4xx, and memory stays flat under a bounded load of oversized forms.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.gateway.support import ADMIN_TOKEN, GatewayProc, Spawn, profile, start_gateway, write_config
from tests.hardening.support import rss_kib

LIMIT = 64 * 1024
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def gateway(spawn_module: Spawn, tmp_path_factory: pytest.TempPathFactory) -> GatewayProc:
    config = write_config(
        tmp_path_factory.mktemp("body-limits") / "routing.yaml",
        {
            "tenants": [{"id": "acme"}],
            "profiles": [profile("acme-dev", "acme", [("feat", "http://127.0.0.1:9/mcp")])],
        },
    )
    return start_gateway(spawn_module, config, name="gw-body-limits")


def session_cookie(http: httpx.Client) -> None:
    """A console session (cookie with a CSRF token), as the login page hands anyone."""
    assert http.get("/console/login").status_code == 200
    assert http.cookies


def csrf_of(page: str) -> str:
    marker = 'name="csrf" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


def test_a_10_mb_console_field_gets_413_not_500(gateway: GatewayProc) -> None:
    with httpx.Client(base_url=gateway.base, timeout=30) as http:
        session_cookie(http)
        response = http.post("/console/login", data={"csrf": "x", "token": "t" * (10 * MIB)})
    assert response.status_code == 413, response.text[:300]
    assert "maxAdminRequestBytes" in response.text
    assert "Traceback" not in gateway.process.log_text()


def test_a_streamed_body_without_length_is_cut_at_the_limit(gateway: GatewayProc) -> None:
    def chunks() -> list[bytes]:
        return [b"token=" + b"t" * 8192] + [b"t" * 8192] * 64  # ~0.5 MiB, no Content-Length

    with httpx.Client(base_url=gateway.base, timeout=30) as http:
        session_cookie(http)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        response = http.post("/console/login", content=iter(chunks()), headers=headers)
    assert response.status_code == 413, response.text[:300]


def test_admin_bodies_are_capped_after_authentication(gateway: GatewayProc) -> None:
    big = {"name": "k", "padding": "p" * (LIMIT + 1)}
    with httpx.Client(base_url=gateway.base, timeout=30) as http:
        anonymous = http.post("/admin/v1/tenants/acme/keys", json=big)
        assert anonymous.status_code == 401  # who you are first: the limit tells a stranger nothing
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        response = http.post("/admin/v1/tenants/acme/keys", json=big, headers=admin)
        assert response.status_code == 413
        assert "maxAdminRequestBytes" in response.json()["detail"]
        # Small bodies still work.
        assert http.post("/admin/v1/tenants/acme/keys", json={"name": "k"}, headers=admin).status_code == 201


def test_a_form_post_without_a_session_is_refused_unread(gateway: GatewayProc) -> None:
    with httpx.Client(base_url=gateway.base, timeout=30) as http:
        response = http.post("/console/login", data={"csrf": "x", "token": "t"})
    assert response.status_code == 403


def test_client_errors_in_forms_stay_4xx_without_traceback(gateway: GatewayProc) -> None:
    many_fields = "&".join(f"f{i}=1" for i in range(1001))  # small, but more fields than any console form
    with httpx.Client(base_url=gateway.base, timeout=30) as http:
        session_cookie(http)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        response = http.post("/console/login", content=many_fields, headers=headers)
        assert response.status_code == 400, response.text[:300]
        assert "Too many fields" in response.text
        # A form that is fine still gets through to the login check.
        login = http.get("/console/login")
        refused = http.post("/console/login", data={"csrf": csrf_of(login.text), "token": "wrong"})
        assert refused.status_code == 401
    assert "console page failed" not in gateway.process.log_text()
    assert "Traceback" not in gateway.process.log_text()


async def _oversized_form(http: httpx.AsyncClient, size: int) -> int:
    async def body() -> AsyncIterator[bytes]:
        # Fields under Starlette's 1 MiB part limit: the old code held every one of them.
        yield b"csrf=x"
        for i in range(size // (512 * 1024)):
            yield f"&f{i}=".encode() + b"t" * (512 * 1024)

    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    try:
        response = await http.post("/console/login", content=body(), headers=headers)
    except httpx.TransportError:
        return 0  # the gateway stopped reading after its 413: also a refusal
    return response.status_code


def test_memory_stays_flat_under_oversized_console_forms(gateway: GatewayProc) -> None:
    """2 x 20 concurrent forms of 4 MiB (160 MiB in all) from one client without a login."""

    async def load() -> list[int]:
        async with httpx.AsyncClient(base_url=gateway.base, timeout=60) as http:
            await http.get("/console/login")
            statuses: list[int] = []
            for _ in range(2):
                statuses += await asyncio.gather(*(_oversized_form(http, 4 * MIB) for _ in range(20)))
            return statuses

    before = max(rss_kib(gateway.process.pid), rss_kib(gateway.process.pid, "VmHWM"))
    statuses = asyncio.run(load())
    # The peak, not the level after: buffered forms are freed once their requests end.
    grown_mib = (rss_kib(gateway.process.pid, "VmHWM") - before) / 1024
    assert grown_mib < 20, f"gateway peak RSS grew by {grown_mib:.0f} MiB under oversized forms"
    assert set(statuses) <= {413, 0} and statuses.count(413) >= len(statuses) // 2, statuses
    with httpx.Client(base_url=gateway.base, timeout=10) as http:
        assert http.get("/console/login").status_code == 200
