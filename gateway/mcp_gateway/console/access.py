"""Who may see what in the console.

Operators log in with the gateway's admin token and see every tenant.
Tenants log in with a *console token*: an admin-minted credential stored
exactly like an API key (same `mcpk_` format, keyed hash, prefix lookup,
revocation, expiry) whose profile list is the single marker `@console`. That
marker is never a valid profile id (ids are DNS labels), so a console token
opens no MCP endpoint; conversely an ordinary API key never opens the console.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from mcp_gateway.auth.apikeys import ApiKeyRecord, key_prefix, new_key
from mcp_gateway.config import Profile, RoutingConfig, Tenant
from mcp_gateway.console.session import LOGIN_SECONDS, Session, SessionCodec, revocation
from mcp_gateway.runtime import Gateway

CONSOLE_SCOPE = "@console"


def is_console_token(record: ApiKeyRecord) -> bool:
    return record.profiles == [CONSOLE_SCOPE]


@dataclass(frozen=True)
class Viewer:
    """A logged-in console user: an operator (tenant None = all tenants) or one tenant."""

    role: str
    tenant: str | None
    csrf: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def sees(self, tenant_id: str) -> bool:
        return self.tenant is None or self.tenant == tenant_id

    def tenants(self, config: RoutingConfig) -> list[Tenant]:
        return [t for t in config.tenants if self.sees(t.id)]

    def profiles(self, config: RoutingConfig) -> list[Profile]:
        return [p for p in config.profiles if self.sees(p.tenant)]

    def profile(self, config: RoutingConfig, profile_id: str) -> Profile | None:
        """The profile if this viewer may see it; another tenant's looks exactly like a missing one."""
        profile = config.profile(profile_id)
        return profile if profile is not None and self.sees(profile.tenant) else None


async def login(gateway: Gateway, codec: SessionCodec, token: str) -> Session | None:
    """A logged-in session for an admin token or a usable console token, else None."""
    token = token.strip()
    if not token:
        return None
    expires = time.time() + LOGIN_SECONDS
    if gateway.admin_token and hmac.compare_digest(token.encode(), gateway.admin_token.encode()):
        return Session(role="admin", admin_fp=codec.fingerprint(gateway.admin_token), expires=expires)
    record = await _console_record(gateway, token)
    if record is None:
        return None
    if record.expires_at is not None:
        expires = min(expires, record.expires_at.timestamp())
    return Session(role="tenant", tenant=record.tenant, key_id=record.id, expires=expires)


async def _console_record(gateway: Gateway, token: str) -> ApiKeyRecord | None:
    prefix = key_prefix(token)
    record = await gateway.store.key_by_prefix(prefix) if prefix else None
    if record is None or not gateway.authenticator.hasher.matches(token, record.key_hash):
        return None
    if not is_console_token(record) or not record.usable_at(datetime.now(UTC)):
        return None
    return record


async def viewer_of(gateway: Gateway, codec: SessionCodec, session: Session | None) -> Viewer | None:
    """The viewer of a session, re-checked on every request (a revoked console token or a logout ends it at once)."""
    if session is None or session.role is None or revocation(session.sid) in gateway.revoked:
        return None
    if session.role == "admin":
        ok = bool(gateway.admin_token and session.admin_fp)
        ok = ok and codec.fingerprint_matches(gateway.admin_token or "", session.admin_fp or "")
        return Viewer("admin", None, session.csrf) if ok else None
    if session.role == "tenant" and session.key_id and session.tenant:
        record = await gateway.store.get_key(session.key_id)
        usable = record is not None and record.usable_at(datetime.now(UTC)) and is_console_token(record)
        if usable and record is not None and record.tenant == session.tenant:
            return Viewer("tenant", session.tenant, session.csrf)
    return None


def mint_console_token(
    gateway: Gateway, tenant: str, name: str, expires_at: datetime | None
) -> tuple[str, ApiKeyRecord]:
    """A tenant console token (secret returned once) and the record to store."""
    return new_key(gateway.authenticator.hasher, tenant, [CONSOLE_SCOPE], name, expires_at)
