"""A circuit breaker per upstream of a profile, fed by real tool calls (and by the health probe).

closed: calls go through; each result is recorded. The circuit opens after
`consecutiveFailures` failed calls in a row, or when at least `minimumCalls` of
the last `windowCalls` calls were made and `errorRate` of them failed.

open: calls are refused at once (the caller is told which upstream and when it
will be tried again) until `openSeconds` have passed; then the circuit is
half-open.

half-open: one trial call goes through (others are still refused); its success
closes the circuit, its failure opens it for another `openSeconds`.

The health monitor (health.py) may also *hold* the circuit open while its probes
say the upstream is unhealthy, and release it when they say it recovered: then
no trial call is spent on an upstream known to be down.

A failure is the upstream not answering properly (unreachable, timed out,
connection lost, internal error); an answer, even a tool error or a refusal of
bad arguments, is a success: the upstream works.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from mcp_gateway.config import CircuitBreaker as Settings


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class Refusal:
    """Why a call is refused now, and in how many seconds the upstream is tried again (None: when a probe passes)."""

    reason: str
    retry_in: float | None


Transition = Callable[[State, str], None]


class Breaker:
    def __init__(
        self, settings: Settings, on_transition: Transition | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.state = State.CLOSED
        self.reason = ""
        self._clock = clock
        self._on_transition = on_transition
        self._consecutive = 0
        self._window: deque[bool] = deque(maxlen=settings.window_calls)  # True: the call failed
        self._failures = 0  # failed calls in the window, kept as calls come (record runs on every call)
        self._opened_at = 0.0
        self._held = False  # held open by the health monitor
        self._trial = False  # a half-open trial call is in flight

    def admit(self) -> Refusal | None:
        """None when a call may go now (in half-open: it is the trial call); else why not."""
        if not self.settings.enabled:
            return None
        if self.state is State.CLOSED:
            return None
        if self._held:
            return Refusal(self.reason, None)
        if self.state is State.OPEN:
            remaining = self._opened_at + self.settings.open_seconds - self._clock()
            if remaining > 0:
                return Refusal(self.reason, remaining)
            self._move(State.HALF_OPEN, self.reason)
        if self._trial:
            return Refusal(f"{self.reason}; a trial call is testing it now", 1.0)
        self._trial = True
        return None

    def record(self, failed: bool, detail: str = "") -> None:
        """The outcome of an admitted call (a cancelled call tells nothing and is not recorded)."""
        if not self.settings.enabled:
            return
        trial, self._trial = self._trial, False
        if self.state is State.HALF_OPEN and trial:
            if failed:
                self._open(f"the trial call failed ({detail})" if detail else "the trial call failed")
            else:
                self._close("a trial call succeeded")
            return
        if self.state is not State.CLOSED:
            return  # a call admitted before the circuit opened: its outcome is already accounted for
        window = self._window
        if len(window) == window.maxlen and window[0]:
            self._failures -= 1  # the oldest call leaves the window
        window.append(failed)
        if not failed:
            self._consecutive = 0
            return
        self._failures += 1
        self._consecutive += 1
        suffix = f" (last: {detail})" if detail else ""
        if self._consecutive >= self.settings.consecutive_failures:
            self._open(f"{self._consecutive} consecutive calls failed{suffix}")
        elif len(window) >= self.settings.minimum_calls and self._failures >= self.settings.error_rate * len(window):
            self._open(f"{self._failures} of the last {len(window)} calls failed{suffix}")

    def end_trial(self) -> None:
        """A trial call ended without an outcome (cancelled before reaching the upstream)."""
        self._trial = False

    def hold(self, reason: str) -> None:
        """Keep the circuit open until `release()` (the health probe says the upstream is down)."""
        self._held = True
        if self.state is not State.OPEN or self.reason != reason:
            self._open(reason)

    def release(self) -> None:
        """The health probe says the upstream recovered: close a circuit it held open."""
        if self._held:
            self._held = False
            self._close("the health check passed")

    def _open(self, reason: str) -> None:
        self._opened_at = self._clock()
        self._move(State.OPEN, reason)

    def _close(self, reason: str) -> None:
        self._consecutive = self._failures = 0
        self._window.clear()
        self._move(State.CLOSED, reason)

    def _move(self, state: State, reason: str) -> None:
        changed = state is not self.state
        self.state, self.reason = state, reason
        if changed and self._on_transition is not None:
            self._on_transition(state, reason)
