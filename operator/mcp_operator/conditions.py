"""Status conditions in the Kubernetes convention (type/status/reason/message,
observedGeneration, lastTransitionTime that only moves when status flips)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Condition:
    type: str
    ready: bool
    reason: str
    message: str
    unknown: bool = False  # status "Unknown": not (yet) known either way

    @property
    def status(self) -> str:
        if self.unknown:
            return "Unknown"
        return "True" if self.ready else "False"


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge(
    previous: list[dict[str, Any]] | None, new: list[Condition], generation: int, keep: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """The new condition list, keeping each condition's lastTransitionTime unless its status changed.
    Previous conditions of a type in `keep` that `new` does not set are carried over unchanged."""
    old = {c.get("type"): c for c in previous or []}
    merged = [c for c in previous or [] if c.get("type") in keep and all(n.type != c.get("type") for n in new)]
    for condition in new:
        before = old.get(condition.type)
        changed = before is None or before.get("status") != condition.status
        merged.append(
            {
                "type": condition.type,
                "status": condition.status,
                "reason": condition.reason,
                "message": condition.message,
                "observedGeneration": generation,
                "lastTransitionTime": now() if changed or not before else before.get("lastTransitionTime", now()),
            }
        )
    return merged


def find(conditions: list[dict[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions or [] if c.get("type") == type_), None)


def transition(previous: list[dict[str, Any]] | None, condition: Condition) -> bool:
    """Whether `condition` differs from the previous one in status or reason (worth an Event)."""
    before = find(previous, condition.type)
    return before is None or before.get("status") != condition.status or before.get("reason") != condition.reason


def status_without_times(status: dict[str, Any]) -> dict[str, Any]:
    """`status` with transition times dropped, for "did anything change" comparisons."""
    out = dict(status)
    out["conditions"] = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in status.get("conditions") or []
    ]
    return out
