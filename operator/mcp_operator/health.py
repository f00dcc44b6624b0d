"""A liveness/readiness endpoint that also answers while waiting for leadership, and /metrics."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from mcp_operator import metrics


@dataclass
class HealthState:
    leader: bool = False
    running: bool = False


async def start(port: int, state: HealthState) -> web.AppRunner:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "leader": state.leader, "running": state.running})

    async def scrape(_: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()  # probed by the kubelet from outside the pod
    return runner
