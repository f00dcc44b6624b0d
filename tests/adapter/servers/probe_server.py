"""A tiny stdio MCP server that reports what happened to its calls (for cancellation and pool tests).

- `slow(seconds)` sleeps; a cancelled call is counted (and noted on stderr).
- `cancellations()` answers how many `slow` calls were cancelled so far.
- `pid()` answers the process id (which child process served the caller).
- `trace_meta()` answers the `traceparent` its request's `_meta` carried ("" without one).

With `PROBE_START_DELAY=<seconds>` it waits that long before it reads stdin (a slow start).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from mcp.server.mcpserver import Context, MCPServer

mcp = MCPServer("probe")
CANCELLED = {"count": 0}


@mcp.tool(description="Sleeps for `seconds`, counting the call if it is cancelled")
async def slow(seconds: float = 5.0) -> str:
    try:
        await asyncio.sleep(min(seconds, 60.0))
    except asyncio.CancelledError:
        CANCELLED["count"] += 1
        print(f"probe: slow call cancelled ({CANCELLED['count']})", file=sys.stderr, flush=True)
        raise
    return f"slept {seconds}s"


@mcp.tool(description="How many slow calls were cancelled")
def cancellations() -> int:
    return CANCELLED["count"]


@mcp.tool(description="The server's process id")
def pid() -> str:
    return str(os.getpid())


@mcp.tool(description="The traceparent this call's _meta carried")
def trace_meta(ctx: Context) -> str:
    meta = ctx.request_context.meta
    fields = meta if isinstance(meta, dict) else (meta.model_dump() if meta is not None else {})
    return str(fields.get("traceparent") or "")


if __name__ == "__main__":
    time.sleep(float(os.environ.get("PROBE_START_DELAY", "0")))
    mcp.run("stdio")
