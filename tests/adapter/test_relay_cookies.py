"""The pass-through relay shares one HTTP client between callers, so it must keep
no cookies: one caller's Set-Cookie would otherwise reach every other caller's upstream calls."""

from __future__ import annotations

import httpx2
from mcp_adapter.sources.mcp_source import refusing_cookie_jar


async def test_relay_cookie_jar_keeps_nothing() -> None:
    seen_cookies: list[str | None] = []

    def upstream(request: httpx2.Request) -> httpx2.Response:
        # Stand-in upstream (httpx2's in-process MockTransport): records what it receives.
        seen_cookies.append(request.headers.get("cookie"))
        return httpx2.Response(200, headers={"set-cookie": "session=alice-secret; Path=/"}, json={})

    async with httpx2.AsyncClient(cookies=refusing_cookie_jar(), transport=httpx2.MockTransport(upstream)) as client:
        await client.post("http://127.0.0.1:9/mcp", json={"caller": "alice"})
        await client.post("http://127.0.0.1:9/mcp", json={"caller": "bob"})
        assert len(client.cookies.jar) == 0
    assert seen_cookies == [None, None]
