"""The reference "everything" server starts from the pinned install and answers a real client."""

from __future__ import annotations

from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.servers.launch import everything_command


async def test_everything_server_runs_over_stdio() -> None:
    command, *args = everything_command("stdio")
    async with Client(StdioServerParameters(command=command, args=args), mode="legacy") as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "echo" in names
        result = await client.call_tool("echo", {"message": "hi"})
    assert "hi" in str(result.content[0])
