"""Resource and prompt policy through the gateway, in both protocol eras: what a profile's
policy hides is missing from the listings and refused when named directly (read, get,
subscribe), while what it allows keeps working."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import types
from mcp.shared.exceptions import MCPError

from tests.gateway.support import Spawn, mcp_client, profile, start_gateway

POLICY = {
    "resources": {"deny": ["test://static-binary", "test://template/*"]},
    "prompts": {"allow": ["test_simple_prompt", "test_prompt_with_*"], "deny": ["test_prompt_with_image"]},
}


@pytest.fixture
def gateway_url(spawn: Spawn, feature: str, routing: Callable[[dict[str, Any]], Path]) -> str:
    config = routing(
        {
            "tenants": [{"id": "acme"}],
            "profiles": [profile("open", "acme", [("feat", feature)], auth={"mode": "none"}, policy=POLICY)],
        }
    )
    return start_gateway(spawn, config).url("open")


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_resource_policy_hides_and_refuses(gateway_url: str, mode: str) -> None:
    async with mcp_client(gateway_url, mode=mode) as client:
        uris = {str(r.uri) for r in (await client.list_resources()).resources}
        assert "test://static-text" in uris
        assert "test://static-binary" not in uris
        assert (await client.list_resource_templates()).resource_templates == []

        allowed = await client.read_resource("test://static-text")
        assert isinstance(allowed.contents[0], types.TextResourceContents)
        for hidden in ("test://static-binary", "test://template/7/data"):
            with pytest.raises(MCPError) as refused:
                await client.read_resource(hidden)
            assert refused.value.error.code == types.INVALID_PARAMS, hidden


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
async def test_subscribing_to_a_hidden_resource_is_refused(gateway_url: str) -> None:
    """Handshake era: `resources/subscribe`."""
    async with mcp_client(gateway_url, mode="legacy") as client:
        await client.subscribe_resource("test://static-text")
        with pytest.raises(MCPError) as refused:
            await client.subscribe_resource("test://static-binary")
        assert refused.value.error.code == types.INVALID_PARAMS


async def test_listening_to_a_hidden_resource_is_refused(gateway_url: str) -> None:
    """2026-07-28: `subscriptions/listen` (which replaced `resources/subscribe`) refuses a hidden URI
    the same way, even next to an allowed one, while a listen on allowed URIs is honoured."""
    async with mcp_client(gateway_url, mode="2026-07-28") as client:
        async with client.listen(resource_subscriptions=["test://static-text"]) as stream:
            assert stream.honored.resource_subscriptions == ["test://static-text"]
        for uris in (["test://static-binary"], ["test://static-text", "test://template/7/data"]):
            with pytest.raises(MCPError) as refused:
                async with client.listen(resource_subscriptions=uris):
                    pass
            assert refused.value.error.code == types.INVALID_PARAMS, uris
            assert "hidden by access policy" in refused.value.error.message


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_prompt_policy_hides_and_refuses(gateway_url: str, mode: str) -> None:
    async with mcp_client(gateway_url, mode=mode) as client:
        names = {p.name for p in (await client.list_prompts()).prompts}
        assert {"test_simple_prompt", "test_prompt_with_arguments"} <= names
        assert "test_prompt_with_image" not in names  # denied
        assert "test_input_required_result_prompt" not in names  # not in the allow list

        shown = await client.get_prompt("test_prompt_with_arguments", {"arg1": "a", "arg2": "b"})
        assert isinstance(shown.messages[0].content, types.TextContent)
        for hidden in ("test_prompt_with_image", "test_input_required_result_prompt"):
            with pytest.raises(MCPError) as refused:
                await client.get_prompt(hidden)
            assert refused.value.error.code == types.INVALID_PARAMS, hidden
