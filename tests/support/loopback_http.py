"""A threaded HTTP server on a loopback address for tests that need a real upstream to talk to."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GetHandler = Callable[[BaseHTTPRequestHandler], None]


def serve_get(on_get: GetHandler, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Serve every GET with `on_get` from a daemon thread; the caller calls `.shutdown()`."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            on_get(self)

        def log_message(self, *args: Any) -> None:
            return None  # keep test output quiet

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def send_json(handler: BaseHTTPRequestHandler, body: bytes) -> None:
    """Answer 200 with an already encoded JSON body."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
