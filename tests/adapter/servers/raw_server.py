"""A hand-written, misbehaving stdio MCP server (handshake era only), for failure-handling tests.

    python raw_server.py MODE

Modes:
- `mute`: completes the handshake and lists one tool, `call`, but never answers a tools/call.
- `garbage`: answers `call`, but first floods stdout with non-JSON-RPC lines (and one huge line).
- `stubborn`: answers `call` with its pid, and ignores SIGTERM (only SIGKILL stops it).
- `pid`: answers `call` with its pid.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

TOOL = {"name": "call", "description": "Answers (or not, depending on the mode)", "inputSchema": {"type": "object"}}
GARBAGE_LINES = 5000


def reply(msg_id: Any, result: dict[str, Any] | None = None, error: dict[str, Any] | None = None) -> None:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id}
    body.update({"error": error} if error is not None else {"result": result})
    sys.stdout.write(json.dumps(body) + "\n")
    sys.stdout.flush()


def answer_call(mode: str, msg_id: Any) -> None:
    if mode == "mute":
        print("raw: ignoring tools/call", file=sys.stderr, flush=True)
        return
    if mode == "garbage":
        for i in range(GARBAGE_LINES):
            sys.stdout.write(f"debug print {i}: this is not JSON-RPC\n")
        sys.stdout.write("{" + "x" * 3_000_000 + "\n")  # one huge broken line
        sys.stdout.flush()
    text = str(os.getpid()) if mode in ("stubborn", "pid") else f"{mode} answered"
    reply(msg_id, {"content": [{"type": "text", "text": text}], "isError": False})


def main() -> None:
    mode = sys.argv[1]
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, lambda *_: print("raw: ignoring SIGTERM", file=sys.stderr, flush=True))
    for line in sys.stdin:
        message = json.loads(line)
        method, msg_id = message.get("method"), message.get("id")
        if msg_id is None:
            continue  # notifications
        if method == "initialize":
            info = {"name": f"raw-{mode}", "version": "0"}
            reply(msg_id, {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": info})
        elif method == "tools/list":
            reply(msg_id, {"tools": [TOOL]})
        elif method == "tools/call":
            answer_call(mode, msg_id)
        elif method == "ping":
            reply(msg_id, {})
        else:
            reply(msg_id, error={"code": -32601, "message": f"method not found: {method}"})


if __name__ == "__main__":
    main()
