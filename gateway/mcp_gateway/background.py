"""Background loops of the gateway (audit flushing, config polling): stopping one cleanly."""

from __future__ import annotations

import asyncio
import contextlib


async def cancel_and_wait(task: asyncio.Task[None] | None) -> None:
    """Cancel `task` (if started) and wait until it has unwound, so nothing runs after shutdown."""
    if task:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
