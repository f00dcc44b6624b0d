"""The Upstream's `Healthy` condition, beside `Ready`: the operator's MCP probes of the
adapter, smoothed with the Upstream's own spec.healthCheck thresholds (hysteresis).

Why the operator and not the gateway replicas: each gateway replica keeps its own view
(its probes, its circuit; `/readyz` shows it), and replicas may briefly disagree. The
Upstream's status needs one writer with one view, and the operator already is the only
writer of Upstream status and already probes every adapter with a real MCP client on the
same path the gateway uses (the adapter Service). So the same probe, judged by the same
thresholds, gives `kubectl get upstreams` a stable answer without a second writer racing
the operator on the status, a leader election among gateway replicas, or RBAC for the
gateway on Upstreams.

`Ready` says whether the last probe answered; `Healthy` moves only after
`unhealthyThreshold` failed probes in a row (to False) or `healthyThreshold` passed
probes in a row (back to True), so one lost probe does not flap it. As in the gateway
(mcp_gateway.health), it starts `Unknown` (reason Probing) and the first passed probe
makes it True. An Upstream with `healthCheck.enabled: false` is never judged: `Unknown`,
reason Unprobed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcp_operator.conditions import Condition
from mcp_operator.probe import ProbeResult

Key = tuple[str, str]

HEALTHY = "Healthy"
# Reasons set from probe streaks; any other previous reason says nothing about the streak.
PASSING, FAILING = "ProbesPassing", "ProbesFailing"


@dataclass
class Streak:
    passed: int = 0
    failed: int = 0


class HealthTracker:
    """Consecutive probe results per Upstream (in memory: a new leader starts counting afresh,
    which only delays a transition; the condition already written stays until then)."""

    def __init__(self) -> None:
        self._streaks: dict[Key, Streak] = {}

    def forget(self, key: Key) -> None:
        self._streaks.pop(key, None)

    def judge(
        self, key: Key, spec: dict[str, Any], previous: dict[str, Any] | None, result: ProbeResult | None
    ) -> Condition:
        """The Healthy condition after this probe (`result` None: no adapter is meant to run)."""
        check = spec.get("healthCheck") or {}
        if check.get("enabled", True) is False:
            self.forget(key)
            return Condition(
                HEALTHY,
                False,
                "Unprobed",
                "spec.healthCheck.enabled is false: this Upstream is not probed (the gateway's circuit breaker "
                "still watches real calls)",
                unknown=True,
            )
        if result is None:
            self.forget(key)
            return Condition(HEALTHY, False, "ScaledToZero", "spec.replicas is 0: no adapter is running")
        streak = self._streaks.setdefault(key, Streak())
        if result.ok:
            streak.passed, streak.failed = streak.passed + 1, 0
        else:
            streak.passed, streak.failed = 0, streak.failed + 1
        rise, fall = int(check.get("healthyThreshold", 2)), int(check.get("unhealthyThreshold", 3))
        before = previous or {}
        was = before.get("status") if before.get("reason") in (PASSING, FAILING) else None
        if result.ok and (was != "False" or streak.passed >= rise):
            return Condition(HEALTHY, True, PASSING, f"the adapter answers MCP probes at {result.url}")
        if not result.ok and (was == "False" or streak.failed >= fall):
            message = f"{fall} or more MCP probes in a row failed at {result.url}; the latest: {result.error}"
            if was == "False" and streak.failed < fall:
                message = str(before.get("message") or message)  # failing again before it recovered
            return Condition(HEALTHY, False, FAILING, message)
        if was is not None:  # within the hysteresis band: keep the previous condition as it is
            return Condition(HEALTHY, was == "True", str(before["reason"]), str(before.get("message") or ""))
        message = f"no MCP probe has passed yet; unhealthy after {fall} failures in a row (the latest: {result.error})"
        return Condition(HEALTHY, False, "Probing", message, unknown=True)
