"""Audit log pages with filters.

The store filters by tenant, profile and tool; caller and outcome are matched
here while paging, with a bound on how many records one page may scan (the
page then ends early and `next_before` lets the reader continue).
"""

from __future__ import annotations

from dataclasses import dataclass

from mcp_gateway.runtime import Gateway
from mcp_gateway.store.base import AuditQuery, AuditRecord

PAGE_SIZE = 50
MAX_SCAN = 5000


@dataclass(frozen=True)
class AuditFilter:
    tenant: str | None = None  # forced to the viewer's tenant for tenant logins
    profile: str | None = None
    caller: str | None = None
    tool: str | None = None
    outcome: str | None = None
    before: int | None = None

    def matches(self, record: AuditRecord) -> bool:
        return (self.caller is None or record.caller == self.caller) and (
            self.outcome is None or record.outcome == self.outcome
        )


@dataclass(frozen=True)
class AuditPage:
    records: list[AuditRecord]
    next_before: int | None  # id to pass as `before` for the next (older) page


async def audit_page(gateway: Gateway, filters: AuditFilter, size: int = PAGE_SIZE) -> AuditPage:
    await gateway.audit.flush()
    found: list[AuditRecord] = []
    before, scanned = filters.before, 0
    while scanned < MAX_SCAN:
        chunk = max(size, 200)
        page = await gateway.store.query_audit(AuditQuery(filters.tenant, filters.profile, filters.tool, before, chunk))
        scanned += len(page)
        for record in page:
            if filters.matches(record):
                found.append(record)
                if len(found) == size:
                    return AuditPage(found, record.id)
        if len(page) < chunk or page[-1].id is None:
            return AuditPage(found, None)
        before = page[-1].id
    return AuditPage(found, before)
