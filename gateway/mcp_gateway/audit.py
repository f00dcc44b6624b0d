"""Buffered audit log: records are queued in memory and flushed in batches.

A failed flush keeps the batch and retries with backoff, so a database outage
delays audit records of completed calls but loses none (up to `max_buffer`;
beyond that the oldest are written to the log as a last resort). On shutdown
whatever cannot reach the store is written to the log as JSON lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import logging
import secrets
from collections import deque
from datetime import UTC, datetime
from typing import Any

from mcp_gateway.background import cancel_and_wait
from mcp_gateway.store.base import AuditRecord, Store

log = logging.getLogger("mcp_gateway.audit")


ARGUMENTS_KEY_LABEL = b"mcp-gateway/audit-arguments/v1"


def arguments_key(pepper: bytes) -> bytes:
    """The key of audit argument hashes, derived from the API-key pepper (a key per purpose)."""
    return hmac.new(pepper, ARGUMENTS_KEY_LABEL, hashlib.sha256).digest()


def render_arguments(arguments: dict[str, Any] | None, mode: str, key: bytes) -> str | None:
    """The audit form of tool arguments: a keyed hash, the keys only, or nothing.

    Keyed (HMAC), not a plain digest: arguments are often low-entropy (an id, a yes/no, a
    short name), and a plain hash of them is reversed by hashing the candidates.
    """
    if arguments is None or mode == "omit":
        return None
    if mode == "redact":
        return json.dumps(dict.fromkeys(sorted(arguments), "***"))
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)
    return "hmac-sha256:" + hmac.digest(key, canonical.encode(), "sha256").hex()


class AuditWriter:
    def __init__(self, store: Store, flush_interval: float = 0.5, batch: int = 500, max_buffer: int = 100_000) -> None:
        self.store = store
        # Set by the gateway at start (from the pepper); random until then, so nothing is ever unkeyed.
        self.arguments_key = secrets.token_bytes(32)
        self.flush_interval = flush_interval
        self.batch = batch
        self._buffer: deque[AuditRecord] = deque()
        self.max_buffer = max_buffer
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()

    def record(self, record: AuditRecord) -> None:
        record.at = record.at or datetime.now(UTC)
        if len(self._buffer) >= self.max_buffer:
            self._spill([self._buffer.popleft()])
        self._buffer.append(record)
        if len(self._buffer) >= self.batch:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    async def flush(self) -> bool:
        """Write everything buffered; False if the store refused (records kept).

        One flush at a time (the background loop, the admin API's audit query and shutdown
        all flush): two concurrent flushes would each drop their chunk's length from the
        front. And the buffer may shed its oldest record while a write is in flight, so
        exactly the written records are removed, by identity, not a count from the front.
        """
        async with self._flushing:
            while self._buffer:
                chunk = list(itertools.islice(self._buffer, self.batch))
                try:
                    await self.store.write_audit(chunk)
                except Exception as exc:
                    log.warning("audit flush failed, keeping %d records for retry: %s", len(self._buffer), exc)
                    return False
                self._forget(chunk)
            return True

    def _forget(self, written: list[AuditRecord]) -> None:
        # Usually the written chunk is still the front of the buffer: pop it without a scan.
        done = {id(record) for record in written}
        while self._buffer and id(self._buffer[0]) in done:
            done.discard(id(self._buffer.popleft()))
        if done:  # records appended or shed meanwhile: remove the rest wherever they are
            self._buffer = deque(r for r in self._buffer if id(r) not in done)

    async def _run(self) -> None:
        delay = self.flush_interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()
            delay = self.flush_interval if await self.flush() else min(delay * 2, 10.0)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        if not await self.flush():
            self._spill(list(self._buffer))
            self._buffer.clear()

    def _spill(self, records: list[AuditRecord]) -> None:
        for record in records:
            log.error("audit record not stored", extra={"event": "audit_spill", "audit": record.public()})
