"""A stdio MCP server that misbehaves on request: never answers, writes garbage or
invalid UTF-8 to stdout (the protocol channel), floods stdout without a newline, or
never ends a huge line before answering."""

from __future__ import annotations

import os
import sys
import time

import anyio
from mcp.server.mcpserver import MCPServer

mcp = MCPServer("misbehaving")

# The SDK diverts fd 1 to stderr while it serves, to protect the protocol channel; a server
# not written with this SDK has no such guard, so keep a handle on the real wire.
WIRE = os.dup(1)


@mcp.tool(description="Answers at once")
def quick() -> str:
    return "quick"


@mcp.tool(description="Never answers")
async def hang() -> str:
    await anyio.sleep_forever()
    return "unreachable"


@mcp.tool(description="Writes `lines` garbage lines (some invalid UTF-8) to stdout, then answers")
def garbage(lines: int = 20) -> str:
    for i in range(lines):
        os.write(WIRE, b"this is not JSON-RPC %d\n" % i if i % 2 else b'\xff\xfe{"jsonrpc": \xc3\x28\n')
    os.write(WIRE, b'{"jsonrpc": "2.0", "method": 5}\n')  # valid JSON, wrong shape
    return "after garbage"


@mcp.tool(description="Writes `megabytes` MiB to stdout without a newline (a runaway print), then answers")
def flood(megabytes: int = 64) -> str:
    block = b"x" * (1024 * 1024)
    for _ in range(megabytes):
        os.write(WIRE, block)
    os.write(WIRE, b"\n")
    return "after flood"


@mcp.tool(description="Writes `megabytes` MiB of JSON-like bytes to stdout and never ends the line, then answers")
def runaway(megabytes: int = 40) -> str:
    # Braces and quotes make the runaway bytes look like the start of a message, the hardest case.
    block = (b'{"progress": "' + b"z" * 1000 + b'\\", ') * 1024
    for _ in range(megabytes):
        os.write(WIRE, block)
    return "after runaway"  # the SDK writes this answer right after the unterminated line


@mcp.tool(description="Writes to stdout without a newline until killed (bounded at `seconds`)")
def flood_forever(seconds: float = 30.0) -> str:
    block = b"y" * (1024 * 1024)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        os.write(WIRE, block)
    return "unreachable"


if __name__ == "__main__":
    print("misbehaving server ready", file=sys.stderr, flush=True)
    mcp.run("stdio")
