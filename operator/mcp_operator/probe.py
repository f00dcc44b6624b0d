"""Ask an adapter which tools it serves, through a real MCP client.

The URL is the one the gateway is given (settings.adapter_url_template): in a
cluster the adapter Service's DNS name; a test or an out-of-cluster setup can
point it somewhere reachable.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from mcp import Client

from mcp_operator.settings import Settings
from mcp_operator.workload import service_url

log = logging.getLogger("mcp_operator.probe")

MAX_PAGES = 100


@dataclass(frozen=True)
class ProbeResult:
    url: str
    ok: bool
    tool_count: int = 0
    error: str = ""


async def _count_tools(url: str, read_timeout: float) -> int:
    async with Client(url, cache=None, read_timeout_seconds=read_timeout) as client:
        count, cursor = 0, None
        for _ in range(MAX_PAGES):
            page = await client.list_tools(cursor=cursor)
            count += len(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        return count


def _describe(exc: BaseException) -> str:
    # anyio wraps transport failures in exception groups; report the innermost cause.
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]


async def probe(settings: Settings, namespace: str, upstream: str) -> ProbeResult:
    url = service_url(namespace, upstream, settings)
    try:
        count = await asyncio.wait_for(_count_tools(url, settings.probe_timeout), settings.probe_timeout * 2)
    except TimeoutError:
        return ProbeResult(url, ok=False, error=f"no answer within {settings.probe_timeout * 2:g}s")
    except Exception as exc:
        log.debug("probe of %s failed", url, exc_info=True)
        return ProbeResult(url, ok=False, error=_describe(exc))
    return ProbeResult(url, ok=True, tool_count=count)
