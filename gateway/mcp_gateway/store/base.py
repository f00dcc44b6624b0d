"""What the gateway needs from its state store.

Two implementations: `MemoryStore` (single replica, the embedded default) and
`PostgresStore` (shared by replicas, exact under concurrency).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # a runtime import would cycle through mcp_gateway.auth
    from mcp_gateway.auth.apikeys import ApiKeyRecord


@dataclass(frozen=True)
class Counter:
    """One quota counter: `scope` (e.g. `tenant:acme`), `period` (e.g. `d:2025-01-31`), its limit."""

    scope: str
    period: str
    limit: int


@dataclass(frozen=True)
class Bucket:
    """One token bucket: refills `rate` tokens per second up to `burst`."""

    key: str
    rate: float
    burst: int


@dataclass(frozen=True)
class Refusal:
    """Why `Store.admit` refused: an empty bucket (and seconds until it has a token), or an exhausted counter."""

    bucket: Bucket | None = None
    wait_seconds: float = 0.0
    counter: Counter | None = None


@dataclass
class AuditRecord:
    tenant: str
    profile: str
    caller: str
    tool: str
    outcome: str
    latency_ms: float
    arguments: str | None = None
    error: str | None = None
    at: datetime | None = None
    id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Who called (auth.Principal.identity): sub, groups, email; or keyId, keyName, keyLabels.
    identity: dict[str, Any] | None = None
    # The policy rule that refused the call (outcome `policy_refused`), else None.
    rule: str | None = None
    # tool | resource | prompt: `tool` then holds the tool's name, the resource URI or the prompt
    # name. Resource reads and prompt gets are audited only when a policy rule refuses them.
    kind: str = "tool"
    # Chosen by the gateway when the call ends, so a retried write (ack lost) inserts nothing twice.
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat() if self.at else None,
            "tenant": self.tenant,
            "profile": self.profile,
            "caller": self.caller,
            "kind": self.kind,
            "tool": self.tool,
            "outcome": self.outcome,
            "latencyMs": round(self.latency_ms, 3),
            "arguments": self.arguments,
            "error": self.error,
            "identity": self.identity,
            "rule": self.rule,
        }


@dataclass(frozen=True)
class AuditQuery:
    tenant: str | None = None
    profile: str | None = None
    tool: str | None = None
    before_id: int | None = None
    limit: int = 100


class Store(Protocol):
    shared: bool  # True when several replicas see the same state

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def ready(self) -> bool: ...

    async def insert_key(self, record: ApiKeyRecord) -> None: ...
    async def key_by_prefix(self, prefix: str) -> ApiKeyRecord | None: ...
    async def get_key(self, key_id: str) -> ApiKeyRecord | None: ...
    async def list_keys(self, tenant: str | None) -> list[ApiKeyRecord]: ...
    async def revoke_key(self, key_id: str) -> bool: ...

    async def consume(self, counters: list[Counter]) -> Counter | None:
        """Count one call against every counter, all or none; return the first one that is exhausted."""
        ...

    async def usage(self, scope: str, *, nested: bool = False) -> list[tuple[str, str, int]]:
        """(scope, period, used) of the counters of exactly `scope`.

        With `nested`, of every scope under `scope` instead, which must then end with the ':'
        separator (see `nested_prefix`): `caller:a:` never matches `caller:a-labs:...`.
        """
        ...

    async def take(self, buckets: list[Bucket]) -> tuple[Bucket, float] | None:
        """Take one token from every bucket, all or none; on refusal return (bucket, seconds until a token)."""
        ...

    async def admit(self, buckets: list[Bucket], counters: list[Counter], *, sync_commit: bool) -> Refusal | None:
        """`take(buckets)`, then, if it took, `consume(counters)`: a request's whole admission in one step.

        A counter's refusal leaves the tokens taken (the request was made). `sync_commit` False lets a
        database store acknowledge before its write is flushed (`gateway.limitsCommit: async`).
        """
        ...

    async def write_audit(self, records: list[AuditRecord]) -> None:
        """Store records; idempotent per `record.uid` (a retried batch adds nothing twice)."""
        ...

    async def query_audit(self, query: AuditQuery) -> list[AuditRecord]: ...

    # --- sessions and replica messages (see sessions.py, backchannel.py) ------

    async def revoke_session(self, nonce: str, expires_at: datetime) -> None:
        """Remember an ended handshake-era session until its token would have expired anyway."""
        ...

    async def revoked_sessions(self) -> list[tuple[str, datetime]]:
        """(nonce, expires_at) of every ended session whose token has not expired yet."""
        ...

    # --- input-required rounds (see request_state.py) ----------------------------

    async def claim_continuation(self, digest: bytes, expires_at: datetime) -> bool:
        """Mark a sealed requestState used; True only for its first use (until `expires_at`)."""
        ...

    async def publish(self, payload: dict[str, Any]) -> None:
        """Send `payload` (JSON-able) to every replica's listener, this one included."""
        ...

    async def listen(self, handler: Listener) -> None:
        """Call `handler` with each published payload (and `{"kind": "resync"}` after a reconnect)."""
        ...


Listener = Callable[[dict[str, Any]], Awaitable[None]]


def nested_prefix(scope: str) -> str:
    """`scope` checked to be a separator-terminated prefix; a bare `tenant:a` would also match `tenant:a-labs`."""
    if not scope.endswith(":"):
        raise ValueError(f"a nested usage lookup needs a prefix ending with the ':' separator, not {scope!r}")
    return scope
