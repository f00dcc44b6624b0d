"""`auth: {type: exchanged | connection}` on an http/openapi source: the API is called with the token
the gateway sent for the request, and never without one (the error names the gateway setting)."""

from __future__ import annotations

import pytest
from mcp_adapter.config import ExchangedAuth
from mcp_adapter.httpcall import HttpExecutor


@pytest.mark.parametrize(
    ("kind", "setting"), [("exchanged", "on an Upstream with tokenExchange"), ("connection", "with connection")]
)
async def test_a_call_that_brought_no_caller_token_is_refused_naming_the_setting(kind: str, setting: str) -> None:
    executor = HttpExecutor(
        "crm", auth=ExchangedAuth(type=kind), headers={}, allow_private=False, timeout=5, max_excerpt=200
    )
    try:
        result = await executor.execute("GET", "https://crm.example.com/deals")  # refused before any request
    finally:
        await executor.close()
    text = result.content[0].text  # type: ignore[union-attr]
    assert result.is_error and f"(auth type {kind})" in text and text.endswith(setting)
