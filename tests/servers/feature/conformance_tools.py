"""Tools the official conformance suite calls by name (its `server` scenarios)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer, Resolve, Sample
from mcp_types import (
    AudioContent,
    CallToolResult,
    CreateMessageResult,
    EmbeddedResource,
    ImageContent,
    SamplingMessage,
    TextContent,
    TextResourceContents,
)
from pydantic import Field

from .media import PNG_BASE64, WAV_BASE64
from .state import REGISTRY

USER_INFO_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "username": {"type": "string", "description": "User's response"},
        "email": {"type": "string", "description": "User's email address"},
    },
    "required": ["username", "email"],
}

DEFAULTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "default": "John Doe"},
        "age": {"type": "integer", "default": 30},
        "score": {"type": "number", "default": 95.5},
        "status": {"type": "string", "enum": ["active", "inactive", "pending"], "default": "active"},
        "verified": {"type": "boolean", "default": True},
    },
}

ENUMS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
        "titledSingle": {
            "type": "string",
            "oneOf": [
                {"const": "value1", "title": "First Option"},
                {"const": "value2", "title": "Second Option"},
                {"const": "value3", "title": "Third Option"},
            ],
        },
        "legacyEnum": {
            "type": "string",
            "enum": ["opt1", "opt2", "opt3"],
            "enumNames": ["Option One", "Option Two", "Option Three"],
        },
        "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
        "titledMulti": {
            "type": "array",
            "items": {
                "anyOf": [
                    {"const": "value1", "title": "First Choice"},
                    {"const": "value2", "title": "Second Choice"},
                    {"const": "value3", "title": "Third Choice"},
                ]
            },
        },
    },
}

JSON_SCHEMA_2020_12: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


async def log_info(ctx: Context, message: str) -> None:
    """Send an info log unless this session raised its level above info."""
    if REGISTRY.wants_log(ctx.request_context, "info"):
        await ctx.request_context.session.send_log_message(
            level="info", data=message, logger="feature_server", related_request_id=ctx.request_id
        )


async def _elicit(ctx: Context, message: str, schema: dict[str, Any]) -> str:
    result = await ctx.session.elicit_form(message, requested_schema=schema, related_request_id=ctx.request_id)
    return f"action={result.action}, content={json.dumps(result.content or {}, sort_keys=True)}"


def ask_llm(prompt: str) -> Sample:
    return Sample([SamplingMessage(role="user", content=TextContent(type="text", text=prompt))], max_tokens=100)


def register(mcp: MCPServer) -> None:
    @mcp.tool(description="Returns simple text content")
    def test_simple_text() -> str:
        return "This is a simple text response for testing."

    @mcp.tool(description="Returns image content")
    def test_image_content() -> list[ImageContent]:
        return [ImageContent(type="image", data=PNG_BASE64, mime_type="image/png")]

    @mcp.tool(description="Returns audio content")
    def test_audio_content() -> list[AudioContent]:
        return [AudioContent(type="audio", data=WAV_BASE64, mime_type="audio/wav")]

    @mcp.tool(description="Returns embedded resource content")
    def test_embedded_resource() -> list[EmbeddedResource]:
        resource = TextResourceContents(
            uri="test://embedded-resource", mime_type="text/plain", text="This is an embedded resource content."
        )
        return [EmbeddedResource(type="resource", resource=resource)]

    @mcp.tool(description="Returns text, image and embedded resource content")
    def test_multiple_content_types() -> list[TextContent | ImageContent | EmbeddedResource]:
        resource = TextResourceContents(
            uri="test://mixed-content-resource", mime_type="application/json", text='{"test":"data","value":123}'
        )
        return [
            TextContent(type="text", text="Multiple content types test:"),
            ImageContent(type="image", data=PNG_BASE64, mime_type="image/png"),
            EmbeddedResource(type="resource", resource=resource),
        ]

    @mcp.tool(description="Sends three info log messages while it runs")
    async def test_tool_with_logging(ctx: Context) -> str:
        await log_info(ctx, "Tool execution started")
        await asyncio.sleep(0.05)
        await log_info(ctx, "Tool processing data")
        await asyncio.sleep(0.05)
        await log_info(ctx, "Tool execution completed")
        return "Tool with logging executed successfully"

    @mcp.tool(description="Reports progress 0, 50, 100 of 100")
    async def test_tool_with_progress(ctx: Context) -> str:
        for step in (0, 50, 100):
            await ctx.report_progress(step, 100, f"Completed step {step} of 100")
            if step < 100:
                await asyncio.sleep(0.05)
        return "Progress tool completed"

    @mcp.tool(description="Always fails with isError")
    def test_error_handling() -> CallToolResult:
        text = "This tool intentionally returns an error for testing"
        return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)

    @mcp.tool(description="Asks the client's LLM via sampling/createMessage")
    async def test_sampling(prompt: str, reply: Annotated[CreateMessageResult, Resolve(ask_llm)]) -> str:
        text = reply.content.text if isinstance(reply.content, TextContent) else str(reply.content)
        return f"LLM response: {text}"

    @mcp.tool(description="Asks the user via elicitation/create")
    async def test_elicitation(message: str, ctx: Context) -> str:
        return "User response: " + await _elicit(ctx, message, USER_INFO_SCHEMA)

    @mcp.tool(description="Elicitation with defaults for every primitive type (SEP-1034)")
    async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
        return "Elicitation completed: " + await _elicit(ctx, "Please review your details", DEFAULTS_SCHEMA)

    @mcp.tool(description="Elicitation with the five enum schema variants (SEP-1330)")
    async def test_elicitation_sep1330_enums(ctx: Context) -> str:
        return "Elicitation completed: " + await _elicit(ctx, "Please pick some options", ENUMS_SCHEMA)

    @mcp.tool(description="Closes its SSE stream mid-call so the client resumes (SEP-1699)")
    async def test_reconnection(ctx: Context) -> str:
        await log_info(ctx, "Before disconnect")
        await ctx.close_sse_stream()
        await asyncio.sleep(0.2)
        await log_info(ctx, "After reconnect")
        return "Reconnection test completed"

    @mcp.tool(description="Needs the client's sampling capability; refused with -32021 without it")
    async def test_missing_capability(reply: Annotated[CreateMessageResult, Resolve(_capability_probe)]) -> str:
        return "sampling available"

    @mcp.tool(description="Mirrors the region argument into an Mcp-Param-Region header (SEP-2243)")
    def test_custom_header_echo(
        region: Annotated[str, Field(description="Region", json_schema_extra={"x-mcp-header": "Region"})],
    ) -> str:
        return f"region={region}"

    @mcp.tool(name="json_schema_2020_12_tool", description="Tool with JSON Schema 2020-12 features")
    def json_schema_tool(**arguments: Any) -> CallToolResult:
        return CallToolResult(content=[TextContent(type="text", text=json.dumps(arguments, sort_keys=True))])

    # The SDK derives schemas from signatures; this one must be published verbatim.
    tool = mcp._tool_manager.get_tool("json_schema_2020_12_tool")
    assert tool is not None
    tool.parameters = JSON_SCHEMA_2020_12


def _capability_probe() -> Sample:
    return Sample([SamplingMessage(role="user", content=TextContent(type="text", text="ping"))], max_tokens=10)
