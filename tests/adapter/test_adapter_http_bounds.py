"""`http` and `openapi` tools against a real loopback HTTP service: a path argument stays one
path segment (`.`/`..` are refused, never resolved into a different upstream path), and a
response body is read only up to `maxResponseBytes`, the result saying it was cut."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp_adapter.config import parse_config
from mcp_adapter.downstream import NullDownstream
from mcp_adapter.sources.base import Source
from mcp_adapter.sources.http_source import HttpToolSource
from mcp_adapter.sources.openapi_source import OpenApiToolSource

from tests.support.loopback_http import send_json, serve_get

BIG = 64 * 1024


class Service:
    """Answers every GET with its own path as JSON; `/big` with a JSON body of `BIG` bytes."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.server = serve_get(self._answer)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        self.paths.append(handler.path)
        if handler.path.startswith("/big"):
            send_json(handler, json.dumps({"pad": "x" * (BIG - 11)}).encode())
        else:
            send_json(handler, json.dumps({"path": handler.path}).encode())


@pytest.fixture
def service() -> Iterator[Service]:
    running = Service()
    yield running
    running.server.shutdown()


def _http_source(service: Service, **extra: Any) -> HttpToolSource:
    tools = [
        {"name": "keys", "url": "/users/{id}/keys", "inputSchema": {"type": "object", "properties": {"id": {}}}},
        {"name": "big", "url": "/big"},
    ]
    raw = {"name": "svc", "type": "http", "baseUrl": service.url, "allowPrivateNetwork": True, "tools": tools}
    config = parse_config({"sources": [{**raw, **extra}]}).sources[0]
    return HttpToolSource(config)  # type: ignore[arg-type]


def _openapi_source(service: Service, tmp_path: Path) -> OpenApiToolSource:
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "svc", "version": "1"},
        "servers": [{"url": service.url}],
        "paths": {
            "/users/{id}/keys": {
                "get": {
                    "operationId": "keys",
                    "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
    }
    spec = tmp_path / "svc.json"
    spec.write_text(json.dumps(doc))
    raw = {"name": "svc", "type": "openapi", "spec": str(spec), "allowPrivateNetwork": True}
    return OpenApiToolSource(parse_config({"sources": [raw]}).sources[0])  # type: ignore[arg-type]


async def _call(source: Source, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
    async with anyio.create_task_group() as tg:
        await source.start(tg)
    try:
        result = await source.call_tool(types.CallToolRequestParams(name=name, arguments=arguments), NullDownstream())
    finally:
        await source.stop()
    assert isinstance(result, types.CallToolResult)
    return result


def _text(result: types.CallToolResult, index: int = 0) -> str:
    block = result.content[index]
    assert isinstance(block, types.TextContent)
    return block.text


@pytest.mark.parametrize("kind", ["http", "openapi"])
@pytest.mark.parametrize("value", ["..", "."])
async def test_dot_segments_are_refused(service: Service, tmp_path: Path, kind: str, value: str) -> None:
    source = _http_source(service) if kind == "http" else _openapi_source(service, tmp_path)
    result = await _call(source, "keys", {"id": value})
    assert result.is_error
    assert f"argument 'id' is {value!r}, which cannot be a path segment" in _text(result)
    assert service.paths == []  # nothing was sent: the call would have reached /keys or /users/keys


@pytest.mark.parametrize("kind", ["http", "openapi"])
async def test_path_arguments_stay_one_segment(service: Service, tmp_path: Path, kind: str) -> None:
    expected = [("../admin", "/users/..%2Fadmin/keys"), ("...", "/users/.../keys"), ("a b", "/users/a%20b/keys")]
    for value, sent in expected:
        source = _http_source(service) if kind == "http" else _openapi_source(service, tmp_path)
        result = await _call(source, "keys", {"id": value})
        assert not result.is_error, _text(result)
        assert result.structured_content == {"path": sent}
    assert service.paths == ["/users/..%2Fadmin/keys", "/users/.../keys", "/users/a%20b/keys"]


async def test_large_responses_are_truncated_and_say_so(service: Service) -> None:
    result = await _call(_http_source(service, maxResponseBytes=4096), "big", {})
    assert not result.is_error
    assert len(_text(result).encode()) == 4096 and _text(result).startswith('{"pad": "xxx')
    assert "truncated" in _text(result, 1) and "larger than 4096 bytes (maxResponseBytes" in _text(result, 1)
    assert result.structured_content == {"truncated": True, "maxResponseBytes": 4096}

    whole = await _call(_http_source(service), "big", {})  # default cap (4 MiB): the body is whole
    assert len(whole.content) == 1 and whole.structured_content is not None
    assert len(whole.structured_content["pad"]) == BIG - 11
