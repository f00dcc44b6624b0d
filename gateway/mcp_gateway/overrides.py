"""Tool overrides: how a profile shows an upstream's tools (`upstreams[].toolOverrides`).

Per upstream tool (by its own name): a new name (SEP-986), title, description,
annotations merged over the upstream's, and fixed arguments — parameters taken
out of the tool's `inputSchema` that the gateway sets on every call (a value a
client sends for one is replaced).

Applied where the upstream is listed and called (the profile's source), so the
aggregator's prefixing and collision rules see the new names like any other.
Policy, per-tool timeouts and `idempotentTools` match either name (policy.py,
proxy.py); the audit records the upstream's real name. Calls of an upstream with
overrides take the SDK path, not the 2026-07-28 relay (which forwards the client's
bytes and so could neither rename nor fill in arguments).

A new name that an upstream tool already has (and keeps) is refused at listing
time: the tool keeps its own name and the error names both.
"""

from __future__ import annotations

import logging
from typing import Any

import mcp_types as types
from mcp_adapter.downstream import Downstream
from mcp_adapter.passthrough import RelayTarget

from mcp_gateway.caching import HintedMcpSource
from mcp_gateway.config import ToolOverride

log = logging.getLogger("mcp_gateway.overrides")


class ToolOverrides:
    def __init__(self, upstream: str, overrides: dict[str, ToolOverride]) -> None:
        self.upstream = upstream
        self.overrides = overrides
        self.real: dict[str, str] = {}  # new name -> the upstream's name, as of the last listing

    def apply(self, tools: list[types.Tool]) -> list[types.Tool]:
        """The listing as this profile shows it; remembers the renames for calls."""
        keeping = {t.name for t in tools if not (o := self.overrides.get(t.name)) or not o.name or o.name == t.name}
        real: dict[str, str] = {}
        shown = []
        for tool in tools:
            override = self.overrides.get(tool.name)
            if override is None:
                shown.append(tool)
                continue
            name = override.name or tool.name
            if name != tool.name and name in keeping:
                log.error(
                    "upstream %s: tool %r cannot be renamed to %r, the upstream's own tool %r has that name; "
                    "it keeps its name (fix toolOverrides)",
                    self.upstream,
                    tool.name,
                    name,
                    name,
                )
                name = tool.name
            if name != tool.name:
                real[name] = tool.name
            shown.append(_shown(tool, override, name))
        self.real = real
        return shown

    def upstream_call(self, params: types.CallToolRequestParams) -> types.CallToolRequestParams:
        """The call as the upstream must receive it: its own tool name, fixed arguments filled in."""
        name = self.real.get(params.name, params.name)
        override = self.overrides.get(name)
        update: dict[str, Any] = {}
        if name != params.name:
            update["name"] = name
        if override is not None and override.fixed_arguments:
            update["arguments"] = {**(params.arguments or {}), **override.fixed_arguments}
        return params.model_copy(update=update) if update else params

    def real_name(self, name: str) -> str | None:
        """The upstream's name of a renamed tool (None when `name` is not a new name)."""
        return self.real.get(name)


def _shown(tool: types.Tool, override: ToolOverride, name: str) -> types.Tool:
    update: dict[str, Any] = {"name": name}
    if override.title is not None:
        update["title"] = override.title
    if override.description is not None:
        update["description"] = override.description
    if override.annotations is not None:
        given = override.annotations.model_dump(exclude_none=True)
        base = tool.annotations.model_dump(exclude_none=True) if tool.annotations else {}
        update["annotations"] = types.ToolAnnotations.model_validate({**base, **given})
    if override.fixed_arguments:
        update["input_schema"] = _without(tool.input_schema, set(override.fixed_arguments))
    return tool.model_copy(update=update)


def _without(schema: dict[str, Any], hidden: set[str]) -> dict[str, Any]:
    trimmed = dict(schema)
    properties = schema.get("properties")
    if isinstance(properties, dict):
        trimmed["properties"] = {k: v for k, v in properties.items() if k not in hidden}
    required = schema.get("required")
    if isinstance(required, list):
        trimmed["required"] = [r for r in required if r not in hidden]
    return trimmed


class ProfileSource(HintedMcpSource):
    """A profile's upstream: cache hints (caching.py) and, when configured, tool overrides."""

    overrides: ToolOverrides | None = None
    bridges_client_era: bool = False
    """The upstream is told a handshake-era client's era (`sendCallerHeader`: an adapter the operator
    deployed), so it serves that client's server requests as input rounds (handshake_relay.py)."""

    async def list_tools(self) -> list[types.Tool]:
        tools = await super().list_tools()
        return self.overrides.apply(tools) if self.overrides is not None else tools

    async def call_tool(
        self, params: types.CallToolRequestParams, downstream: Downstream
    ) -> types.CallToolResult | types.InputRequiredResult:
        if self.overrides is not None:
            params = self.overrides.upstream_call(params)
        return await super().call_tool(params, downstream)

    def relay_target(self) -> RelayTarget | None:
        return None if self.overrides is not None else super().relay_target()
