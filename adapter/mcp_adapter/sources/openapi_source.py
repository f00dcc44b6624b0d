"""`openapi` source: every selected operation of an OpenAPI document is a tool."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import anyio.abc
import httpx
import mcp_types as types
import yaml
from mcp.shared.exceptions import MCPError

from mcp_adapter.config import OpenApiSource
from mcp_adapter.downstream import Downstream
from mcp_adapter.httpcall import HttpExecutor, PathValueError, path_segment, tool_error
from mcp_adapter.openapi import Operation, operations, server_url
from mcp_adapter.sources.base import Source

logger = logging.getLogger(__name__)


def load_document(location: str, timeout: float = 30.0) -> dict[str, Any]:
    if re.match(r"^https?://", location):
        text = httpx.get(location, timeout=timeout, follow_redirects=True).raise_for_status().text
    else:
        text = Path(location).read_text(encoding="utf-8")
    doc = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    if not isinstance(doc, dict) or "paths" not in doc:
        raise ValueError("not an OpenAPI document (no `paths`)")
    if not str(doc.get("openapi", "")).startswith("3."):
        raise ValueError(f"only OpenAPI 3.0/3.1 is supported (document says openapi={doc.get('openapi')!r})")
    return doc


class OpenApiToolSource(Source):
    kind = "openapi"

    def __init__(self, config: OpenApiSource) -> None:
        super().__init__(config.name, config)
        self.cfg = config
        self.ops: dict[str, Operation] = {}
        self.base_url: str | None = None
        self.error: str | None = None
        self.executor: HttpExecutor | None = None

    async def start(self, tg: anyio.abc.TaskGroup) -> None:
        try:
            doc = await anyio.to_thread.run_sync(load_document, self.cfg.spec)
            self.ops = {op.tool_name: op for op in operations(doc, self.cfg.include, self.cfg.exclude)}
            self.base_url = self.cfg.base_url or server_url(doc, self.cfg.spec)
            if self.base_url is None:
                raise ValueError("the document declares no absolute server URL; set baseUrl on the source")
            self.executor = HttpExecutor.for_source(self.cfg)
            logger.info("openapi source loaded", extra={"source": self.name, "operations": len(self.ops)})
        except Exception as exc:
            self.error = f"cannot load OpenAPI document: {exc}"
            logger.error(self.error, extra={"source": self.name})

    async def stop(self) -> None:
        if self.executor is not None:
            await self.executor.close()

    def is_ready(self) -> bool:
        return self.executor is not None

    def status(self) -> dict[str, Any]:
        return {"ready": self.is_ready(), "operations": len(self.ops), "lastError": self.error}

    async def list_tools(self) -> list[types.Tool]:
        return [
            types.Tool(name=op.tool_name, description=op.description, input_schema=op.input_schema)
            for op in self.ops.values()
        ]

    async def call_tool(
        self, params: types.CallToolRequestParams, downstream: Downstream
    ) -> types.CallToolResult | types.InputRequiredResult:
        op = self.ops.get(params.name)
        if op is None or self.executor is None or self.base_url is None:
            raise MCPError(code=types.INVALID_PARAMS, message=f"unknown tool {params.name!r} on source {self.name!r}")
        args = dict(params.arguments or {})
        path = op.path
        query: dict[str, Any] = {}
        headers: dict[str, str] = {}
        for p in op.params:
            if p.arg not in args:
                if p.location == "path":
                    return tool_error(f"missing required path parameter {p.arg!r}")
                continue
            value = args[p.arg]
            if p.location == "path":
                try:
                    path = path.replace("{" + p.name + "}", path_segment(p.arg, value))
                except PathValueError as exc:
                    return tool_error(str(exc))
            elif p.location == "query":
                query[p.name] = value
            else:
                headers[p.name] = str(value)
        if op.has_body and "body" not in args and "body" in op.input_schema.get("required", []):
            return tool_error("missing required argument 'body'")
        url = self.base_url.rstrip("/") + path
        return await self.executor.execute(
            op.method, url, query=query, headers=headers, body=args.get("body"), has_body=op.has_body and "body" in args
        )
