"""An MCP server that misbehaves as a JSON control file says, for retry tests.

python tests/gateway/servers/flaky_server.py --port P --control /tmp/flaky.json

Control file (read on every call, so a test changes behaviour while the server runs):
  {"fail": 2, "hang": 0, "slow": 0}
- fail: the next N tool calls answer a JSON-RPC error (-32603), counting down in the file;
- hang: seconds each call waits before answering (a stuck upstream);
- slow: seconds each call waits after a failure check (a slow answer).
Every call received is appended to `<control>.calls` (one tool name a line), so a test
can count how often the upstream was really reached.

Tools: `read_value` (readOnlyHint), `set_value` (idempotentHint), `charge_card` (no hints).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, ToolAnnotations


def _behave(control: Path, tool: str) -> tuple[bool, float]:
    """Record the call; (fail now?, seconds to wait)."""
    with control.with_name(control.name + ".calls").open("a") as calls:
        calls.write(tool + "\n")
    state = json.loads(control.read_text() or "{}")
    fail = int(state.get("fail", 0)) > 0
    if fail:
        state["fail"] = int(state["fail"]) - 1
        control.write_text(json.dumps(state))
    return fail, float(state.get("hang", 0)) + float(state.get("slow", 0))


def build(control: Path) -> MCPServer:
    mcp = MCPServer("flaky")

    def make(name: str):  # type: ignore[no-untyped-def]
        async def tool(value: str = "") -> str:
            fail, wait = _behave(control, name)
            await asyncio.sleep(wait)
            if fail:
                raise MCPError(code=INTERNAL_ERROR, message=f"{name}: failing on purpose")
            return f"{name} ok {value}".strip()

        return tool

    mcp.add_tool(make("read_value"), name="read_value", annotations=ToolAnnotations(read_only_hint=True))
    mcp.add_tool(
        make("set_value"), name="set_value", annotations=ToolAnnotations(read_only_hint=False, idempotent_hint=True)
    )
    mcp.add_tool(make("charge_card"), name="charge_card")
    return mcp


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control", type=Path, required=True)
    args = parser.parse_args()
    app = build(args.control).streamable_http_app(host="127.0.0.1")
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
