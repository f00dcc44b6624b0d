"""A threaded HTTP server on a loopback address for tests that need a real upstream to talk to."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

RequestHandler = Callable[[BaseHTTPRequestHandler], None]


def serve_get(on_get: RequestHandler, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Serve every GET with `on_get` from a daemon thread; the caller calls `.shutdown()`."""
    return serve_http(on_get, ("GET",), host, port)


def serve_http(
    on_request: RequestHandler,
    methods: tuple[str, ...],
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    keep_alive: bool = False,
) -> ThreadingHTTPServer:
    """Serve every request of `methods` with `on_request` from a daemon thread.

    `keep_alive`: HTTP/1.1 persistent connections (every answer must then carry Content-Length).
    """

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

        def log_message(self, *args: Any) -> None:
            return None  # keep test output quiet

    for method in methods:
        setattr(Handler, f"do_{method}", lambda self: on_request(self))
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
