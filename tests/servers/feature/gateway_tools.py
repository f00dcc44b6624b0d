"""General-purpose tools for testing the adapter and gateway against a real server:
timeouts, errors, structured output, dual-era elicitation/sampling/roots,
list_changed, resource updates and caller identity."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

from mcp.server.mcpserver import Context, Elicit, ElicitationResult, ListRoots, MCPServer, Resolve, Sample
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, CreateMessageResult, ListRootsResult, SamplingMessage, TextContent
from pydantic import BaseModel, Field

from .catalog import WATCHED, WATCHED_URI
from .conformance_tools import log_info
from .state import REGISTRY

MAX_SLEEP_SECONDS = 300.0
MAX_OUTPUT_CHARS = 10_000_000
SECRET_HEADERS = {"authorization", "cookie", "x-api-key", "proxy-authorization"}


class Sum(BaseModel):
    a: int
    b: int
    sum: int


class Answer(BaseModel):
    answer: str = Field(description="Your answer")


class WhoAmI(BaseModel):
    session_id: str | None
    protocol_version: str | None
    client_name: str | None
    headers: dict[str, str]


def ask_question(question: str) -> Elicit[Answer]:
    return Elicit(question, Answer)


def ask_model(prompt: str) -> Sample:
    return Sample([SamplingMessage(role="user", content=TextContent(type="text", text=prompt))], max_tokens=200)


def want_roots() -> ListRoots:
    return ListRoots()


def _visible_headers(ctx: Context) -> dict[str, str]:
    """Request headers, with credentials replaced by a marker (tests check presence, logs stay clean)."""
    headers = ctx.headers or {}
    return {k.lower(): ("<redacted>" if k.lower() in SECRET_HEADERS else v) for k, v in headers.items()}


async def _notify_list_changed(ctx: Context, kind: str) -> None:
    await REGISTRY.broadcast(kind)
    if kind == "tools":
        await ctx.notify_tools_changed()
    elif kind == "resources":
        await ctx.notify_resources_changed()


def register(mcp: MCPServer) -> None:
    @mcp.tool(description="Echoes its text argument")
    def echo(text: str) -> str:
        return text

    @mcp.tool(description="Adds two integers; structured output with an outputSchema")
    def add(a: int, b: int) -> Sum:
        return Sum(a=a, b=b, sum=a + b)

    @mcp.tool(description="Sleeps for `seconds` (for timeout and cancellation tests), then answers")
    async def slow(seconds: float = 1.0) -> str:
        await asyncio.sleep(min(max(seconds, 0.0), MAX_SLEEP_SECONDS))
        return f"slept {seconds}s"

    @mcp.tool(description="Returns a tool error (isError: true) carrying `message`")
    def fail(message: str = "requested failure") -> CallToolResult:
        return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)

    @mcp.tool(description="Answers with a JSON-RPC error (not a tool result)")
    def protocol_error(code: int = -32603, message: str = "requested protocol error") -> str:
        raise MCPError(code=code, message=message)

    @mcp.tool(description="Reports `steps` progress notifications and log messages, `delay` seconds apart")
    async def progress_steps(ctx: Context, steps: int = 3, delay: float = 0.05) -> str:
        steps = min(max(steps, 1), 1000)
        for i in range(1, steps + 1):
            await ctx.report_progress(i, steps, f"step {i}/{steps}")
            await log_info(ctx, f"step {i}/{steps}")
            await asyncio.sleep(min(delay, 5.0))
        return f"done {steps} steps"

    @mcp.tool(description="Asks the user a question (elicitation; works in both protocol eras)")
    async def ask_user(question: str, reply: Annotated[ElicitationResult[Answer], Resolve(ask_question)]) -> str:
        if reply.action == "accept":
            return f"user answered: {reply.data.answer}"
        return f"user did not answer: {reply.action}"

    @mcp.tool(description="Asks the client's LLM (sampling; works in both protocol eras)")
    async def sample_llm(prompt: str, reply: Annotated[CreateMessageResult, Resolve(ask_model)]) -> str:
        text = reply.content.text if isinstance(reply.content, TextContent) else str(reply.content)
        return f"model {reply.model} said: {text}"

    @mcp.tool(description="Lists the client's roots (works in both protocol eras)")
    async def client_roots(roots: Annotated[ListRootsResult, Resolve(want_roots)]) -> list[str]:
        return [str(root.uri) for root in roots.roots]

    @mcp.tool(description="Registers a new echo tool called `name` and announces tools/list_changed")
    async def add_tool(name: str, ctx: Context) -> str:
        def dynamic(text: str) -> str:
            return f"{name}: {text}"

        mcp.add_tool(dynamic, name=name, description=f"Dynamically added tool {name}")
        await _notify_list_changed(ctx, "tools")
        return f"added {name}"

    @mcp.tool(description="Removes a tool added by add_tool and announces tools/list_changed")
    async def remove_tool(name: str, ctx: Context) -> str:
        mcp.remove_tool(name)
        await _notify_list_changed(ctx, "tools")
        return f"removed {name}"

    @mcp.tool(description="Changes test://watched-resource and notifies its subscribers")
    async def update_resource(text: str, ctx: Context) -> str:
        WATCHED["text"] = text
        delivered = await REGISTRY.broadcast("updated", WATCHED_URI)
        await ctx.notify_resource_updated(WATCHED_URI)
        return f"updated; notified {delivered} subscribed session(s)"

    @mcp.tool(description="Describes the calling session: session id, protocol version, client name, headers")
    def whoami(ctx: Context) -> WhoAmI:
        params = ctx.session.client_params
        return WhoAmI(
            session_id=(ctx.headers or {}).get("mcp-session-id"),
            protocol_version=ctx.protocol_version,
            client_name=params.client_info.name if params is not None else None,
            headers=_visible_headers(ctx),
        )

    @mcp.tool(description="Returns `size` characters of text (for size-limit tests)")
    def big_output(size: int = 1000) -> str:
        return "x" * min(max(size, 0), MAX_OUTPUT_CHARS)

    @mcp.tool(description="Reads an environment variable whose name starts with FEATURE_ (stdio env passing)")
    def get_env(name: str) -> str:
        if not name.startswith("FEATURE_"):
            raise ToolError("only variables named FEATURE_* can be read")
        return os.environ.get(name, "")
