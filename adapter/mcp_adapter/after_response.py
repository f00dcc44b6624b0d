"""Bookkeeping a relayed call does once its answer is sent: the caller does not wait for it.

A tool call's metrics and audit record (the gateway's interceptor) are complete when the
upstream's answer arrives, but writing them before relaying that answer puts them on every
call's latency. While a relayed call runs (`passthrough._Relay.run` opens `deferring`),
`defer` holds them until the answer has been sent; anywhere else (the SDK path, a background
task, a call already over) it runs them at once, so nothing deferred is ever dropped or held
for longer than its own call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import Context, ContextVar, copy_context

log = logging.getLogger(__name__)


class _Batch:
    __slots__ = ("calls", "open")

    def __init__(self) -> None:
        self.calls: list[tuple[Context, Callable[[], None]]] = []
        self.open = True


_current: ContextVar[_Batch | None] = ContextVar("mcp_adapter_after_response", default=None)


def defer(call: Callable[[], None]) -> None:
    """Run `call` after the current request's response, or now when no request will run it.

    It runs in a copy of the context it was deferred in: it sees the request's context
    variables (the caller's identity) as they were.
    """
    batch = _current.get()
    if batch is None or not batch.open:
        call()
        return
    batch.calls.append((copy_context(), call))


@contextmanager
def deferring() -> Iterator[None]:
    """Collect `defer`red work while the body runs, and run it when it ends (also on errors)."""
    batch = _Batch()
    token = _current.set(batch)
    try:
        yield
    finally:
        batch.open = False  # a task that copied this context and outlives the request runs its own
        _current.reset(token)
        for context, call in batch.calls:
            try:
                context.run(call)
            except Exception:  # bookkeeping must never turn an answered request into a failure
                log.exception("post-response bookkeeping failed")
