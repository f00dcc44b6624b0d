"""`http` source: tools declared by hand (method, URL template, schema, body mapping)."""

from __future__ import annotations

import re
from typing import Any

import anyio.abc
import mcp_types as types
from mcp.shared.exceptions import MCPError

from mcp_adapter.config import HttpSource, HttpToolConfig
from mcp_adapter.downstream import Downstream
from mcp_adapter.httpcall import HttpExecutor, PathValueError, path_segment, tool_error
from mcp_adapter.sources.base import Source


class HttpToolSource(Source):
    kind = "http"

    def __init__(self, config: HttpSource) -> None:
        super().__init__(config.name, config)
        self.cfg = config
        self.tools = {t.name: t for t in config.tools}
        self.executor: HttpExecutor | None = None

    async def start(self, tg: anyio.abc.TaskGroup) -> None:
        self.executor = HttpExecutor.for_source(self.cfg)

    async def stop(self) -> None:
        if self.executor is not None:
            await self.executor.close()

    def is_ready(self) -> bool:
        return self.executor is not None

    async def list_tools(self) -> list[types.Tool]:
        return [
            types.Tool(name=t.name, description=t.description or f"{t.method} {t.url}", input_schema=t.input_schema)
            for t in self.tools.values()
        ]

    async def call_tool(
        self, params: types.CallToolRequestParams, downstream: Downstream
    ) -> types.CallToolResult | types.InputRequiredResult:
        tool = self.tools.get(params.name)
        if tool is None or self.executor is None:
            raise MCPError(code=types.INVALID_PARAMS, message=f"unknown tool {params.name!r} on source {self.name!r}")
        args = dict(params.arguments or {})
        try:
            url, used = _expand(tool.url, args)
        except PathValueError as exc:
            return tool_error(str(exc))
        if not re.match(r"^https?://", url):
            if self.cfg.base_url is None:
                raise MCPError(code=types.INTERNAL_ERROR, message=f"source {self.name!r} needs baseUrl for {tool.url}")
            url = self.cfg.base_url.rstrip("/") + "/" + url.lstrip("/")
        query = {name: args[name] for name in tool.query if name in args}
        headers = {header: str(args[arg]) for header, arg in tool.headers.items() if arg in args}
        used |= set(tool.query) | set(tool.headers.values())
        body, has_body = _body(tool, args, used)
        return await self.executor.execute(tool.method, url, query=query, headers=headers, body=body, has_body=has_body)


def _expand(template: str, args: dict[str, Any]) -> tuple[str, set[str]]:
    used: set[str] = set()

    def sub(match: re.Match[str]) -> str:
        used.add(match.group(1))
        if match.group(1) not in args:
            raise MCPError(code=types.INVALID_PARAMS, message=f"missing argument {match.group(1)!r} for the URL")
        return path_segment(match.group(1), args[match.group(1)])

    return re.sub(r"{([^}]+)}", sub, template), used


def _body(tool: HttpToolConfig, args: dict[str, Any], used: set[str]) -> tuple[Any, bool]:
    if tool.body == "none":
        return None, False
    if tool.body == "field":
        return args.get("body"), "body" in args
    if tool.body == "arguments":
        return {k: v for k, v in args.items() if k not in used}, True
    return {key: args[arg] for key, arg in tool.body.items() if arg in args}, True
