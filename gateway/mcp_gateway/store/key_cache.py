"""API key records cached by prefix, so a request with a known key costs no database round trip.

Only found records are cached (a key minted on another replica works at once).
A revocation evicts the record here and, through the replicas' NOTIFY channel,
on every other replica; if that message is lost (the LISTEN connection was
down), the record expires after `ttl_seconds` anyway, and a reconnect clears
the whole cache. Expiry times are checked on every request from the record.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from mcp_gateway.auth.apikeys import ApiKeyRecord

KEY_CACHE_SECONDS = 10.0
KEY_CACHE_SIZE = 10_000


class KeyCache:
    def __init__(self, ttl_seconds: float = KEY_CACHE_SECONDS, size: int = KEY_CACHE_SIZE) -> None:
        self.ttl_seconds = ttl_seconds
        self.size = size
        self._records: OrderedDict[str, tuple[float, ApiKeyRecord]] = OrderedDict()

    def get(self, prefix: str) -> ApiKeyRecord | None:
        cached = self._records.get(prefix)
        if cached is None:
            return None
        if time.monotonic() - cached[0] >= self.ttl_seconds:
            del self._records[prefix]
            return None
        return cached[1]

    def put(self, record: ApiKeyRecord) -> None:
        self._records[record.prefix] = (time.monotonic(), record)
        self._records.move_to_end(record.prefix)
        while len(self._records) > self.size:
            self._records.popitem(last=False)

    def forget(self, prefix: str) -> None:
        self._records.pop(prefix, None)

    def clear(self) -> None:
        self._records.clear()
