"""`mcp-operator`: wait for leadership, then run the kopf handlers plus the
routing publisher and the upstream monitor until stopped or leadership is lost."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

import kopf
from mcp_common import jsonlog

from mcp_operator import health, ownership
from mcp_operator.context import OperatorContext
from mcp_operator.kube import Kube, load_api_client
from mcp_operator.leader import LeaderElector
from mcp_operator.settings import Settings, parse

log = logging.getLogger("mcp_operator")

EXIT_LOST_LEADERSHIP = 3


async def _wait_for_leadership(elector: LeaderElector, stop: asyncio.Event) -> bool:
    acquire = asyncio.create_task(elector.acquire())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({acquire, stopped}, return_when=asyncio.FIRST_COMPLETED)
    for task in (acquire, stopped):
        task.cancel()
    return acquire.done() and not acquire.cancelled() and acquire.exception() is None


async def _run_kopf(settings: Settings, ctx: OperatorContext, elector: LeaderElector | None) -> int:
    from mcp_operator import handlers  # noqa: F401 - importing registers the handlers

    stop_flag = asyncio.Event()
    memo = kopf.Memo()
    memo.ctx = ctx
    operator = asyncio.create_task(
        kopf.operator(
            clusterwide=not settings.namespaces,
            namespaces=list(settings.namespaces),
            standalone=True,  # leadership comes from our Lease, not kopf peering
            memo=memo,
            stop_flag=stop_flag,
        ),
        name="kopf",
    )
    helpers = [
        asyncio.create_task(ctx.publisher.run(), name="publisher"),
        asyncio.create_task(ctx.monitor.run(), name="monitor"),
    ]
    hold = asyncio.create_task(elector.hold() if elector else asyncio.Event().wait(), name="lease")
    await asyncio.wait({operator, hold}, return_when=asyncio.FIRST_COMPLETED)
    lost = hold.done()
    stop_flag.set()
    for task in [*helpers, hold]:
        task.cancel()
    code = 0
    try:
        await asyncio.wait_for(operator, timeout=30)
    except Exception as exc:
        log.error("operator stopped with an error: %s", exc)
        code = 1
    if lost:
        return EXIT_LOST_LEADERSHIP
    if elector:
        await elector.release()
    return code


async def run(settings: Settings) -> int:
    kube = Kube(load_api_client(settings.kubeconfig))
    state = health.HealthState()
    runner = await health.start(settings.health_port, state) if settings.health_port else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        owner = await ownership.resolve(kube, settings)
        elector = None
        if settings.leader_election:
            elector = LeaderElector(
                kube,
                settings.lease_namespace,
                settings.lease_name,
                settings.identity,
                settings.lease_duration,
                owner_references=ownership.references(owner, settings.lease_namespace),
            )
            if not await _wait_for_leadership(elector, stop):
                return 0
        state.leader = state.running = True
        log.info(
            "operator running",
            extra={
                "namespaces": list(settings.namespaces) or "all",
                "routing_configmap": settings.routing_ref,
                "adapter_image": settings.adapter_image,
            },
        )
        return await _run_kopf(settings, OperatorContext.create(settings, kube, owner), elector)
    finally:
        if runner:
            await runner.cleanup()


class _KopfNoise(logging.Filter):
    """Kopf attaches its whole settings object and internals as `extra` fields; keep lines readable."""

    def filter(self, record: logging.LogRecord) -> bool:
        for attr in ("settings", "k8s_skip", "k8s_ref"):
            record.__dict__.pop(attr, None)
        return record.levelno >= logging.WARNING or not record.name.startswith("kopf.objects")


def _configure_logging(level: str) -> None:
    jsonlog.configure(level, component="mcp-operator")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_KopfNoise())


def main(argv: list[str] | None = None) -> None:
    settings = parse(argv)
    _configure_logging(settings.log_level)
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(run(settings)))


if __name__ == "__main__":
    main()
