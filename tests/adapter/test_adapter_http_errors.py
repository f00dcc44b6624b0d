"""Every error `/mcp` answers is a JSON-RPC error body with the right status that says what to fix,
including the ones the SDK transport answers with plain text or an empty body (Content-Type, body size,
Accept, HTTP method)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.adapter.support import Adapter, feature_stdio, start_adapter
from tests.support.processes import ManagedProcess, start_process

MODERN = "2026-07-28"
PING = {"jsonrpc": "2.0", "id": 7, "method": "ping", "params": {}}
GOOD_ACCEPT = "application/json, text/event-stream"


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Adapter]:
    started: list[ManagedProcess] = []

    def spawn(cmd: list[str], **kwargs: Any) -> ManagedProcess:
        started.append(start_process(cmd, **kwargs))
        return started[-1]

    yield start_adapter(spawn, tmp_path_factory.mktemp("http-errors"), [feature_stdio()])
    for process in started:
        process.stop()


@pytest.fixture
async def http(adapter: Adapter) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=adapter.url, timeout=30) as client:
        yield client


def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["jsonrpc"] == "2.0" and body["id"] is None
    assert isinstance(body["error"]["code"], int)
    message = body["error"]["message"]
    assert isinstance(message, str) and message
    return message


@pytest.mark.parametrize("version", [None, "2025-11-25", MODERN])
async def test_wrong_content_type_is_a_415_json_rpc_error(http: httpx.AsyncClient, version: str | None) -> None:
    headers = {"Accept": GOOD_ACCEPT, "Content-Type": "text/plain"}
    if version:
        headers["MCP-Protocol-Version"] = version
    message = error_of(await http.post("/mcp", content=json.dumps(PING), headers=headers), 415)
    assert "Content-Type: application/json" in message and "'text/plain'" in message
    missing = {"Accept": GOOD_ACCEPT}  # no Content-Type at all
    assert "sent none" in error_of(await http.post("/mcp", content=json.dumps(PING), headers=missing), 415)


async def test_oversized_body_is_a_413_json_rpc_error_naming_the_limit(http: httpx.AsyncClient) -> None:
    huge = json.dumps({**PING, "params": {"pad": "A" * (5 * 1024 * 1024)}})
    headers = {"Accept": GOOD_ACCEPT, "Content-Type": "application/json", "MCP-Protocol-Version": MODERN}
    answer = await http.post("/mcp", content=huge, headers=headers)
    message = error_of(answer, 413)
    assert answer.json()["error"]["code"] == -32013
    assert "4194304 bytes" in message and "smaller" in message

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: the limit applies while reading
        for start in range(0, len(huge), 1 << 20):
            yield huge[start : start + (1 << 20)].encode()

    assert "4194304" in error_of(await http.post("/mcp", content=chunked(), headers=headers), 413)


@pytest.mark.parametrize("accept", ["text/html", "application/json", "text/event-stream", None])
@pytest.mark.parametrize("version", ["2025-11-25", MODERN])
async def test_unacceptable_accept_is_a_406_json_rpc_error(
    http: httpx.AsyncClient, accept: str | None, version: str
) -> None:
    headers = {"Content-Type": "application/json", "MCP-Protocol-Version": version}
    request = http.build_request("POST", "/mcp", content=json.dumps(PING), headers=headers)
    if accept is None:
        del request.headers["Accept"]  # httpx sends `*/*` by default
    else:
        request.headers["Accept"] = accept
    message = error_of(await http.send(request), 406)
    assert "application/json" in message and "text/event-stream" in message
    if version == MODERN:
        assert (repr(accept) if accept else "sent none") in message  # the adapter says what it received


async def test_get_on_the_stateless_endpoint_is_a_405_json_rpc_error(http: httpx.AsyncClient) -> None:
    answer = await http.get("/mcp", headers={"Accept": "text/event-stream", "MCP-Protocol-Version": MODERN})
    message = error_of(answer, 405)
    assert answer.headers["allow"] == "POST" and "use POST" in message


async def test_well_formed_requests_still_work(http: httpx.AsyncClient) -> None:
    headers = {
        "Accept": GOOD_ACCEPT,
        "Content-Type": "application/json; charset=utf-8",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "server/discover",
    }
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
    discover = {"jsonrpc": "2.0", "id": 8, "method": "server/discover", "params": {"_meta": meta}}
    answer = await http.post("/mcp", content=json.dumps(discover), headers=headers)
    assert answer.status_code == 200, answer.text[:300]
    assert '"error"' not in answer.text and MODERN in answer.text
