"""An ASGI app served by a real uvicorn server inside the test's own event loop, on loopback."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import uvicorn

from tests.support.processes import free_port


@contextlib.asynccontextmanager
async def uvicorn_serving(app: Any, start_seconds: float = 20, **config: Any) -> AsyncIterator[str]:
    """Serve `app` (uvicorn.Config's other settings in `config`) until the block ends; yields its base URL."""
    port = free_port()
    settings: dict[str, Any] = {"log_level": "warning", "lifespan": "on", **config}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **settings))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(start_seconds):
            while not server.started:
                await anyio.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
