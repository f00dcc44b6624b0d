"""Retries of tool calls: which failures, how often, how long to wait (docs/routing-config.md).

Settings come from the profile's `retries` and an upstream's own `retries` (field by field, the
upstream's win). A failure is retried only when that is safe:
- `unavailable`: the upstream said at once that it is not connected, so the request was never
  sent; any tool may be retried;
- `error` (an upstream's JSON-RPC error) and `timeout` (the upstream's own `timeoutSeconds`
  elapsed): the request was sent and may have acted, so only idempotent tools are retried
  (`policy.idempotentTools`, or the tool's `readOnlyHint`/`idempotentHint` annotations).
A call's deadline (the profile's timeout) bounds everything: no wait is started that would end
past it.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import mcp_types as types
from mcp.shared.exceptions import MCPError
from mcp_adapter.upstream import UNAVAILABLE

from mcp_gateway import errors
from mcp_gateway.config import Failure, RetrySettings

# "Not connected" said within this long means the request never left the adapter (a slow one
# already waited for a reconnect, and may have been sent to a server that then went away).
FAST_FAILURE_SECONDS = 1.0
# Errors about the request itself, and an open circuit (which refuses at once until its own
# retry time, health.py): sending it again cannot help.
_NOT_RETRIED = frozenset(
    {
        types.INVALID_PARAMS,
        types.INVALID_REQUEST,
        types.METHOD_NOT_FOUND,
        types.PARSE_ERROR,
        errors.UPSTREAM_UNAVAILABLE,
    }
)


DEFAULT = RetrySettings()


def effective(*layers: RetrySettings | None) -> RetrySettings:
    """Later layers override earlier ones, field by field (only the fields each one sets)."""
    merged: dict[str, object] = {}
    for layer in layers:
        if layer is not None:
            merged.update({name: getattr(layer, name) for name in layer.model_fields_set})
    return RetrySettings.model_validate(merged) if merged else DEFAULT


def delay(settings: RetrySettings, retry: int, rng: random.Random | None = None) -> float:
    """The wait before retry number `retry` (0-based): doubling from the base up to the max, the
    `jitter` share of it random so that callers failing together do not come back together."""
    ceiling = min(settings.backoff_max_seconds, settings.backoff_base_seconds * 2**retry)
    return ceiling * (1 - settings.jitter * (rng or random).random())


def failure_kind(exc: MCPError, seconds: float) -> tuple[Failure | None, bool]:
    """What failed, and whether the request was surely never sent. None: not retryable at all."""
    if exc.code == UNAVAILABLE:
        return "unavailable", seconds < FAST_FAILURE_SECONDS
    if exc.code == types.REQUEST_TIMEOUT:
        return "timeout", False
    if exc.code in _NOT_RETRIED:
        return None, False
    return "error", False


@dataclass(frozen=True)
class Decision:
    retry: bool
    wait: float = 0.0
    reason: str = ""  # the failure kind, for the metric and the log


def decide(
    settings: RetrySettings,
    exc: MCPError,
    seconds: float,
    retry: int,
    idempotent: bool,
    deadline: float | None,
    rng: random.Random | None = None,
) -> Decision:
    """Retry after this failure (of an attempt that took `seconds`; `retry` retries done so far)?"""
    kind, unsent = failure_kind(exc, seconds)
    if kind is None or kind not in settings.retry_on or retry + 1 >= settings.attempts:
        return Decision(False)
    if not (unsent or idempotent):
        return Decision(False)
    wait = delay(settings, retry, rng)
    if deadline is not None and time.monotonic() + wait >= deadline:
        return Decision(False)  # the wait alone would outlast the call
    return Decision(True, wait, kind)
