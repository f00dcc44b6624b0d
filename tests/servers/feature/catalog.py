"""Resources, resource templates, prompts, completion, subscriptions and logging/setLevel."""

from __future__ import annotations

import json
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp_types import (
    Completion,
    CompletionArgument,
    CompletionContext,
    EmbeddedResource,
    EmptyResult,
    ImageContent,
    PromptReference,
    ResourceTemplateReference,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextResourceContents,
    UnsubscribeRequestParams,
)

from .media import PNG_BASE64, PNG_BYTES
from .state import REGISTRY

WATCHED_URI = "test://watched-resource"
# Mutable by the `update_resource` tool; read by the watched resource.
WATCHED = {"text": "Watched resource content"}

CITIES = ["paris", "park", "party", "prague", "porto", "berlin", "bern"]


def _complete(prefix: str, options: list[str]) -> Completion:
    values = [option for option in options if option.startswith(prefix)]
    return Completion(values=values, total=len(values), has_more=False)


def register_resources(mcp: MCPServer) -> None:
    @mcp.resource(
        "test://static-text", name="static-text", description="A static text resource", mime_type="text/plain"
    )
    def static_text() -> str:
        return "This is the content of the static text resource."

    @mcp.resource("test://static-binary", name="static-binary", description="A 1x1 PNG", mime_type="image/png")
    def static_binary() -> bytes:
        return PNG_BYTES

    @mcp.resource(
        WATCHED_URI, name="watched-resource", description="Changes via update_resource", mime_type="text/plain"
    )
    def watched() -> str:
        return WATCHED["text"]

    @mcp.resource(
        "test://template/{id}/data", name="template-data", description="Data for an id", mime_type="application/json"
    )
    def template_data(id: str) -> str:
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"}, separators=(",", ":"))


def register_prompts(mcp: MCPServer) -> None:
    @mcp.prompt(description="A simple prompt without arguments")
    def test_simple_prompt() -> list[UserMessage]:
        return [UserMessage("This is a simple prompt for testing.")]

    @mcp.prompt(description="A prompt with two required arguments")
    def test_prompt_with_arguments(arg1: str, arg2: str) -> list[UserMessage]:
        return [UserMessage(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'")]

    @mcp.prompt(description="A prompt embedding the resource it is given")
    def test_prompt_with_embedded_resource(resourceUri: str) -> list[UserMessage]:
        resource = TextResourceContents(
            uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."
        )
        return [
            UserMessage(EmbeddedResource(type="resource", resource=resource)),
            UserMessage("Please process the embedded resource above."),
        ]

    @mcp.prompt(description="A prompt with an image")
    def test_prompt_with_image() -> list[UserMessage]:
        return [
            UserMessage(ImageContent(type="image", data=PNG_BASE64, mime_type="image/png")),
            UserMessage("Please analyze the image above."),
        ]


def register_handlers(mcp: MCPServer) -> None:
    @mcp.completion()
    async def complete(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion:
        if isinstance(ref, ResourceTemplateReference):
            return _complete(argument.value, ["1", "12", "123", "42"])
        return _complete(argument.value, CITIES)

    async def subscribe(ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams) -> EmptyResult:
        info = REGISTRY.info(ctx)
        if info is not None:
            info.subscriptions.add(params.uri)
        return EmptyResult()

    async def unsubscribe(ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams) -> EmptyResult:
        info = REGISTRY.info(ctx)
        if info is not None:
            info.subscriptions.discard(params.uri)
        return EmptyResult()

    async def set_level(ctx: ServerRequestContext[Any, Any], params: SetLevelRequestParams) -> EmptyResult:
        info = REGISTRY.info(ctx)
        if info is not None:
            info.log_level = params.level
        return EmptyResult()

    lowlevel = mcp._lowlevel_server
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)
    lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)
