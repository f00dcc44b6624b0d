"""The interface every source implements, in upstream names.

The `Aggregator` renames and routes; a `Source` only ever sees its own
upstream names. Operations a source does not support raise METHOD_NOT_FOUND
(the base class default), listing operations return empty lists.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio.abc
import mcp_types as types
from mcp.shared.exceptions import MCPError

from mcp_adapter.downstream import Downstream

ChangeHook = Callable[[str, str], Awaitable[None]]
"""`(source name, what changed: tools|resources|prompts)`."""
UpdateHook = Callable[[str, str, str], Awaitable[None]]
"""`(source name, caller, resource uri)` for `notifications/resources/updated`."""


def unsupported(source: str, what: str) -> MCPError:
    return MCPError(code=types.METHOD_NOT_FOUND, message=f"source {source!r} does not support {what}")


class Source:
    """Base class: a named source of tools (and maybe resources, prompts)."""

    kind = "base"

    def __init__(self, name: str, config: Any) -> None:
        self.name = name
        self.config = config

    @property
    def session_scope(self) -> str:
        """`shared` (one upstream session for every caller) or `per-caller`; only MCP sources can be per-caller."""
        return "shared"

    async def start(self, tg: anyio.abc.TaskGroup) -> None:
        """Begin connecting in the background; must not block on the upstream."""

    async def wait_ready(self, within: float) -> bool:
        return True

    async def stop(self) -> None:
        """Release every session, process and connection."""

    def is_ready(self) -> bool:
        return True

    def status(self) -> dict[str, Any]:
        return {"ready": self.is_ready()}

    def capabilities(self) -> types.ServerCapabilities:
        return types.ServerCapabilities(tools=types.ToolsCapability())

    async def list_tools(self) -> list[types.Tool]:
        return []

    async def call_tool(
        self, params: types.CallToolRequestParams, downstream: Downstream
    ) -> types.CallToolResult | types.InputRequiredResult:
        raise unsupported(self.name, "tools/call")

    async def list_resources(self) -> list[types.Resource]:
        return []

    async def list_resource_templates(self) -> list[types.ResourceTemplate]:
        return []

    async def read_resource(
        self, params: types.ReadResourceRequestParams, downstream: Downstream
    ) -> types.ReadResourceResult | types.InputRequiredResult:
        raise unsupported(self.name, "resources/read")

    async def subscribe(self, uri: str, downstream: Downstream) -> None:
        raise unsupported(self.name, "resources/subscribe")

    async def unsubscribe(self, uri: str, downstream: Downstream) -> None:
        raise unsupported(self.name, "resources/unsubscribe")

    async def list_prompts(self) -> list[types.Prompt]:
        return []

    async def get_prompt(
        self, params: types.GetPromptRequestParams, downstream: Downstream
    ) -> types.GetPromptResult | types.InputRequiredResult:
        raise unsupported(self.name, "prompts/get")

    async def complete(self, params: types.CompleteRequestParams, downstream: Downstream) -> types.CompleteResult:
        return types.CompleteResult(completion=types.Completion(values=[]))

    async def set_level(self, level: types.LoggingLevel, downstream: Downstream) -> None:
        return None
