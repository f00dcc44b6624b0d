"""The `inventory` HTTP service of examples/k8s/openapi-document.yaml (standard library only):
GET /items?limit=N and GET /items/{sku} answer JSON naming the pod that served them."""

from __future__ import annotations

import json
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ITEMS = {
    "A-100": {"sku": "A-100", "name": "anvil", "stock": 3},
    "B-200": {"sku": "B-200", "name": "bellows", "stock": 12},
    "C-300": {"sku": "C-300", "name": "chisel", "stock": 0},
}


class Inventory(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/items":
            limit = int(parse_qs(url.query).get("limit", ["100"])[0])
            self._answer(200, {"items": list(ITEMS.values())[:limit], "servedBy": socket.gethostname()})
        elif url.path.startswith("/items/") and url.path.count("/") == 2:
            item = ITEMS.get(url.path.removeprefix("/items/"))
            if item is None:
                self._answer(404, {"error": "unknown SKU"})
            else:
                self._answer(200, {**item, "servedBy": socket.gethostname()})
        else:
            self._answer(404, {"error": "not found"})

    def do_DELETE(self) -> None:
        self._answer(403, {"error": "this example inventory is read-only"})

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the readiness probe would log a line every two seconds


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", 8080), Inventory).serve_forever()
