"""2026-07-28 multi-round-trip (InputRequiredResult) fixtures the conformance suite calls.

Handlers see `ctx.input_responses` / `ctx.request_state` in plaintext: the SDK's
RequestStateBoundary seals outgoing state and rejects tampered echoes.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp_types import ElicitResult, InputRequiredResult, ListRootsResult


def _elicit(message: str, field: str, kind: str = "string") -> dict[str, Any]:
    schema = {"type": "object", "properties": {field: {"type": kind}}, "required": [field]}
    return {"method": "elicitation/create", "params": {"message": message, "requestedSchema": schema}}


def _sample(text: str, max_tokens: int) -> dict[str, Any]:
    message = {"role": "user", "content": {"type": "text", "text": text}}
    return {"method": "sampling/createMessage", "params": {"messages": [message], "maxTokens": max_tokens}}


ROOTS_REQUEST: dict[str, Any] = {"method": "roots/list", "params": {}}


def ask(requests: dict[str, dict[str, Any]], state: str | None = None) -> InputRequiredResult:
    payload: dict[str, Any] = {"resultType": "input_required", "inputRequests": requests}
    if state is not None:
        payload["requestState"] = state
    return InputRequiredResult.model_validate(payload)


def answer(ctx: Context, key: str) -> Any:
    """The client's response for `key`, or None when it did not answer it."""
    return (ctx.input_responses or {}).get(key)


def elicited(ctx: Context, key: str, field: str) -> Any:
    response = answer(ctx, key)
    if isinstance(response, ElicitResult) and response.content:
        return response.content.get(field)
    return None


def sampled_text(response: Any) -> str:
    content = getattr(response, "content", None)
    return str(getattr(content, "text", content))


def register(mcp: MCPServer) -> None:
    @mcp.tool(description="Round 1 asks for a name by elicitation; round 2 greets")
    async def test_input_required_result_elicitation(ctx: Context) -> str | InputRequiredResult:
        if answer(ctx, "user_name") is None:
            return ask({"user_name": _elicit("What is your name?", "name")})
        return f"Hello, {elicited(ctx, 'user_name', 'name')}!"

    @mcp.tool(description="Round 1 asks the client's LLM; round 2 returns its answer")
    async def test_input_required_result_sampling(ctx: Context) -> str | InputRequiredResult:
        response = answer(ctx, "capital_question")
        if response is None:
            return ask({"capital_question": _sample("What is the capital of France?", 100)})
        return f"The model said: {sampled_text(response)}"

    @mcp.tool(description="Round 1 asks for the client's roots; round 2 lists them")
    async def test_input_required_result_list_roots(ctx: Context) -> str | InputRequiredResult:
        response = answer(ctx, "client_roots")
        if not isinstance(response, ListRootsResult):
            return ask({"client_roots": ROOTS_REQUEST})
        return "Client roots: " + ", ".join(str(root.uri) for root in response.roots)

    @mcp.tool(description="Round-trips requestState and checks it on round 2")
    async def test_input_required_result_request_state(ctx: Context) -> str | InputRequiredResult:
        if answer(ctx, "confirm") is None or ctx.request_state != "awaiting-confirm":
            return ask({"confirm": _elicit("Please confirm", "ok", "boolean")}, "awaiting-confirm")
        return "state-ok: confirmation received"

    @mcp.tool(description="Same as request_state; tampered state is rejected by the SDK's boundary")
    async def test_input_required_result_tampered_state(ctx: Context) -> str | InputRequiredResult:
        if answer(ctx, "confirm") is None or ctx.request_state != "signed-state":
            return ask({"confirm": _elicit("Please confirm", "ok", "boolean")}, "signed-state")
        return "state-ok"

    @mcp.tool(description="Asks elicitation, sampling and roots in one round")
    async def test_input_required_result_multiple_inputs(ctx: Context) -> str | InputRequiredResult:
        keys = ("user_name", "greeting", "client_roots")
        if ctx.request_state != "multi" or any(answer(ctx, key) is None for key in keys):
            requests = {
                "user_name": _elicit("What is your name?", "name"),
                "greeting": _sample("Generate a greeting", 50),
                "client_roots": ROOTS_REQUEST,
            }
            return ask(requests, "multi")
        return f"{sampled_text(answer(ctx, 'greeting'))} {elicited(ctx, 'user_name', 'name')}"

    @mcp.tool(description="Three rounds: name, then colour, then done")
    async def test_input_required_result_multi_round(ctx: Context) -> str | InputRequiredResult:
        state = ctx.request_state or ""
        if state.startswith("round-2:") and answer(ctx, "step2") is not None:
            return f"Done: {state.removeprefix('round-2:')} likes {elicited(ctx, 'step2', 'color')}"
        if state == "round-1" and answer(ctx, "step1") is not None:
            name = elicited(ctx, "step1", "name")
            return ask({"step2": _elicit("Step 2: What is your favorite color?", "color")}, f"round-2:{name}")
        return ask({"step1": _elicit("Step 1: What is your name?", "name")}, "round-1")

    @mcp.tool(description="Only asks for what the client declared it can answer")
    async def test_input_required_result_capabilities(ctx: Context) -> str | InputRequiredResult:
        caps = ctx.client_capabilities
        if answer(ctx, "question") is not None or answer(ctx, "user_name") is not None:
            return "answered"
        requests: dict[str, dict[str, Any]] = {}
        if caps is not None and caps.sampling is not None:
            requests["question"] = _sample("Say hello", 20)
        if caps is not None and caps.elicitation is not None:
            requests["user_name"] = _elicit("What is your name?", "name")
        return ask(requests) if requests else "no input capability declared"

    @mcp.prompt(description="Asks for context by elicitation before rendering")
    async def test_input_required_result_prompt(ctx: Context) -> list[UserMessage] | InputRequiredResult:
        if answer(ctx, "user_context") is None:
            return ask({"user_context": _elicit("What context should the prompt use?", "context")})
        return [UserMessage(f"Prompt rendered with context: {elicited(ctx, 'user_context', 'context')}")]
