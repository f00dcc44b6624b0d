"""request_state.py's middleware in process: a real SDK server (the gateway's profile server in
miniature: the middleware in front of an "upstream" handler) and the real SDK client driving
2026-07-28 input-required rounds by hand. The client only ever sees gateway-sealed state, the
upstream only its own; tampered, foreign and oversized state is refused with a message that says
what to do; state is bound to the caller and profile and lives an hour; only a tools/call
continuation is reported to the quota hook (mutation-tested; tests/gateway/test_request_state.py
covers the same through a gateway process)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import Client, types
from mcp.server import request_state as sdk_request_state
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from mcp_gateway.auth import Principal
from mcp_gateway.config import Profile, RoutingConfig
from mcp_gateway.context import CallContext, current_call
from mcp_gateway.request_state import REFUSAL, SealedRequestState, state_codec
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS

from tests.gateway.support import profile as profile_doc

MODERN = "2026-07-28"
MAX = 128 * 1024  # MAX_ENVELOPE_CHARS
QUESTION = types.ElicitRequest(
    params=types.ElicitRequestFormParams(message="sure?", requested_schema={"type": "object", "properties": {}})
)
ANSWER: types.InputResponses = {"q": types.ElicitResult(action="accept", content={})}


class Upstream:
    """What the profile server's handlers (the upstreams, behind the middleware) saw and say."""

    def __init__(self) -> None:
        self.states: list[str | None] = []
        self.continuations: list[str] = []

    async def call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> Any:
        self.states.append(params.request_state)
        if params.name == "plain":
            return types.CallToolResult(content=[types.TextContent(type="text", text="plain")])
        if params.input_responses is None:
            first = {"ask": "upstream-1", "stateless": None, "huge": "x" * MAX}[params.name]
            return types.InputRequiredResult(input_requests={"q": QUESTION}, request_state=first)
        return types.CallToolResult(content=[types.TextContent(type="text", text=f"state={params.request_state}")])

    async def get_prompt(self, ctx: Any, params: types.GetPromptRequestParams) -> Any:
        self.states.append(params.request_state)
        if params.input_responses is None:
            return types.InputRequiredResult(input_requests={"q": QUESTION}, request_state="prompt-1")
        text = types.TextContent(type="text", text=f"state={params.request_state}")
        return types.GetPromptResult(messages=[types.PromptMessage(role="user", content=text)])

    async def list_tools(self, ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[types.Tool(name=n, input_schema={"type": "object"}) for n in TOOLS])

    async def continuation(self, envelope: str) -> None:
        self.continuations.append(envelope)


TOOLS = ("ask", "stateless", "huge", "plain")


@contextlib.asynccontextmanager
async def served(profile_id: str = "p1", caller: str | None = None) -> AsyncIterator[tuple[Client, Upstream]]:
    """A client connected to profile `profile_id`'s server as `caller` (the front's call context,
    which the server's tasks inherit); every server shares the gateway's keys, as replicas do.
    A context manager, not a fixture: the client's task group must close in the task that opened it."""
    upstream = Upstream()
    server: Server[Any] = Server(
        "profile", on_call_tool=upstream.call_tool, on_get_prompt=upstream.get_prompt, on_list_tools=upstream.list_tools
    )
    server.middleware.append(SealedRequestState(state_codec([b"k" * 32]), profile_id, upstream.continuation))
    token = None
    if caller is not None:
        profile = Profile.model_validate(profile_doc(profile_id, "acme", [("feat", "http://127.0.0.1:9/mcp")]))
        token = current_call.set(CallContext(RoutingConfig(), profile, Principal("apiKey", "acme", caller)))
    try:
        async with Client(server, mode=MODERN) as client:
            yield client, upstream
    finally:
        if token is not None:
            current_call.reset(token)


async def ask(client: Client, name: str, state: str | None = None, answer: bool = False) -> Any:
    return await client.session.call_tool(
        name, {}, request_state=state, input_responses=ANSWER if answer else None, allow_input_required=True
    )


async def refused(client: Client, name: str, state: str) -> types.ErrorData:
    with pytest.raises(MCPError) as failure:
        await ask(client, name, state, answer=True)
    return failure.value.error


async def test_state_travels_sealed_and_the_upstream_gets_its_own() -> None:
    async with served() as (client, upstream):
        first = await ask(client, "ask")
        assert isinstance(first, types.InputRequiredResult) and isinstance(first.request_state, str)
        assert "upstream-1" not in first.request_state and len(first.request_state) > 40
        # Inside the seal: the profile as audience, and the upstream's own state, marked.
        claims = json.loads(state_codec([b"k" * 32]).unseal(first.request_state))
        assert (claims["aud"], claims["s"]) == ("mcp-gateway/p1", "u:upstream-1")
        assert upstream.continuations == []  # a first call is no continuation
        done = await ask(client, "ask", first.request_state, answer=True)
        assert isinstance(done, types.CallToolResult) and done.content[0].text == "state=upstream-1"
        assert upstream.states == [None, "upstream-1"] and upstream.continuations == [first.request_state]

        # An upstream that keeps no state still gets an envelope handed out, and none back.
        stateless = await ask(client, "stateless")
        assert isinstance(stateless.request_state, str)
        done = await ask(client, "stateless", stateless.request_state, answer=True)
        assert done.content[0].text == "state=None" and upstream.states[-1] is None
        assert upstream.continuations == [first.request_state, stateless.request_state]

        # Calls that are no rounds pass through untouched.
        assert (await ask(client, "plain")).content[0].text == "plain"
        assert [t.name for t in (await client.list_tools()).tools] == list(TOOLS)


async def test_altered_foreign_and_oversized_state_is_refused() -> None:
    async with served() as (client, upstream):
        sealed = (await ask(client, "ask")).request_state
        seen = len(upstream.states)
        altered = sealed[:-6] + ("AAAAAA" if not sealed.endswith("AAAAAA") else "BBBBBB")
        for state in (altered, "upstream-1", "u:upstream-1"):
            error = await refused(client, "ask", state)
            assert (error.code, error.message) == (INVALID_PARAMS, REFUSAL), state
        error = await refused(client, "stateless", sealed)  # issued for another request
        assert (error.code, error.message) == (INVALID_PARAMS, REFUSAL)
        error = await refused(client, "ask", "x" * (MAX + 1))
        assert (error.code, error.message) == (INVALID_PARAMS, f"requestState exceeds {MAX} characters")
        assert len(upstream.states) == seen and upstream.continuations == []  # the upstream never saw them
        # At the limit, state is opened (and refused for what it is, not for its size).
        assert (await refused(client, "ask", "x" * MAX)).message == REFUSAL


async def test_state_too_large_to_relay_is_an_internal_error() -> None:
    async with served() as (client, _):
        with pytest.raises(MCPError) as failure:
            await ask(client, "huge")
        assert failure.value.error.code == INTERNAL_ERROR
        assert "requestState is too large for the gateway to relay (over 131072 characters sealed)" in (
            failure.value.error.message
        )


async def test_prompt_rounds_are_sealed_but_not_continuations() -> None:
    async with served() as (client, upstream):
        first = await client.session.get_prompt("greet", allow_input_required=True)
        assert isinstance(first, types.InputRequiredResult) and "prompt-1" not in str(first.request_state)
        done = await client.session.get_prompt(
            "greet", request_state=first.request_state, input_responses=ANSWER, allow_input_required=True
        )
        assert isinstance(done, types.GetPromptResult) and done.messages[0].content.text == "state=prompt-1"
        assert upstream.continuations == []


async def test_state_is_bound_to_the_caller_and_the_profile() -> None:
    async with served("p1", "key:alice") as (client, _):
        sealed = (await ask(client, "ask")).request_state
    async with served("p1", "key:alice") as (client, upstream):  # another replica, same caller
        assert (await ask(client, "ask", sealed, answer=True)).content[0].text == "state=upstream-1"
    for profile_id, caller in (("p1", "key:bob"), ("p2", "key:alice")):
        async with served(profile_id, caller) as (client, upstream):
            assert (await refused(client, "ask", sealed)).message == REFUSAL, (profile_id, caller)
            assert upstream.states == []


class Clock:
    """The SDK's wall clock for sealing and opening, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def time(self) -> float:
        return self.now


async def test_state_lives_for_an_hour(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(sdk_request_state, "time", clock)
    async with served() as (client, _):
        sealed = (await ask(client, "ask")).request_state
        clock.now += 3500  # a person may take most of an hour to answer
        assert (await ask(client, "ask", sealed, answer=True)).content[0].text == "state=upstream-1"
        clock.now += 200
        assert (await refused(client, "ask", sealed)).message == REFUSAL
