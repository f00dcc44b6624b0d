"""The gateway's live state: config, store, auth, limits, audit, metrics, backends."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from mcp.server.request_state import AESGCMRequestStateCodec
from mcp_common.jsonlog import register_secret
from starlette.types import Receive, Scope, Send

from mcp_gateway.audit import AuditWriter, arguments_key
from mcp_gateway.auth import Authenticator
from mcp_gateway.auth.apikeys import KeyHasher
from mcp_gateway.auth.secret_keys import SecretKeyTable
from mcp_gateway.backchannel import Relay
from mcp_gateway.config import Profile, RoutingConfig
from mcp_gateway.config_source import ConfigHolder, kube_core_api
from mcp_gateway.connections.service import KIND as CONNECTION_DELETED
from mcp_gateway.connections.service import Connections
from mcp_gateway.connections.store import ConnectionStore, MemoryConnections, PostgresConnections
from mcp_gateway.context import current_call
from mcp_gateway.discovery.meta import Indexes
from mcp_gateway.discovery.reveal import Revealed
from mcp_gateway.jsonrpc import tool_name
from mcp_gateway.limits import Limiter, LimitExceeded
from mcp_gateway.metrics import Metrics
from mcp_gateway.policy import PolicyCache
from mcp_gateway.request_state import TTL_SECONDS, state_codec
from mcp_gateway.rules import subject_of
from mcp_gateway.sessions import RevokedSessions, SessionSigner, parse_keys
from mcp_gateway.store.base import Store
from mcp_gateway.streams import SessionStreams
from mcp_gateway.token_exchange import SecretReader, TokenExchanger

log = logging.getLogger("mcp_gateway.runtime")


class Backend(Protocol):
    """A profile's MCP server: an ASGI app plus the lifetime that keeps its upstream sessions."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...

    def run(self) -> AbstractAsyncContextManager[None]: ...


BackendFactory = Callable[["Gateway", Profile], Backend]


@dataclass
class _Running:
    fingerprint: str
    backend: Backend
    ready: asyncio.Event
    stop: asyncio.Event
    task: asyncio.Task[None]


def _fingerprint(profile: Profile) -> str:
    """What the backend is built from; other profile changes (auth, policy, limits) apply without a rebuild."""
    return "|".join(u.model_dump_json() for u in profile.upstreams)


class BackendPool:
    """One running backend per profile, rebuilt when its upstreams change.

    Each backend lives in its own task so its async context (SDK session
    manager, upstream sessions) is entered and exited in one task. A replaced
    backend is stopped after a grace period so requests in flight finish.
    """

    def __init__(self, gateway: Gateway, factory: BackendFactory, grace_seconds: float = 30.0) -> None:
        self.gateway = gateway
        self.factory = factory
        self.grace = grace_seconds
        self._running: dict[str, _Running] = {}
        self._lock = asyncio.Lock()
        self._retired: set[asyncio.Task[None]] = set()

    async def get(self, profile: Profile) -> Backend:
        running = self._running.get(profile.id)
        fingerprint = _fingerprint(profile)
        if running is None or running.fingerprint != fingerprint:
            async with self._lock:
                running = self._running.get(profile.id)
                if running is None or running.fingerprint != fingerprint:
                    if running is not None:
                        self._retire(running)
                    running = self._start(profile, fingerprint)
                    self._running[profile.id] = running
        await running.ready.wait()
        if running.task.done():
            self._running.pop(profile.id, None)
            raise RuntimeError(f"the MCP backend of profile {profile.id!r} failed to start")
        return running.backend

    def _start(self, profile: Profile, fingerprint: str) -> _Running:
        backend = self.factory(self.gateway, profile)
        ready, stop = asyncio.Event(), asyncio.Event()

        async def live() -> None:
            try:
                async with backend.run():
                    ready.set()
                    await stop.wait()
            except Exception:
                log.exception("MCP backend of profile %s stopped with an error", profile.id)
            finally:
                ready.set()

        task = asyncio.get_running_loop().create_task(live(), name=f"backend-{profile.id}")
        return _Running(fingerprint, backend, ready, stop, task)

    def _retire(self, running: _Running, delay: float | None = None) -> None:
        async def later() -> None:
            await asyncio.sleep(self.grace if delay is None else delay)
            running.stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(running.task, 10)

        task = asyncio.get_running_loop().create_task(later())
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    def health(self, *, errors: bool) -> dict[str, Any]:
        """Per running profile backend, its upstreams' health and circuits (health.py), for /readyz."""
        report: dict[str, Any] = {}
        for profile_id, running in self._running.items():
            monitor = getattr(running.backend, "health", None)
            if monitor is not None and running.ready.is_set():
                report[profile_id] = monitor.detail(errors=errors)
        return report

    def reconcile(self, config: RoutingConfig) -> None:
        """Retire backends of profiles that are gone or whose upstreams changed."""
        for profile_id, running in list(self._running.items()):
            profile = config.profile(profile_id)
            if profile is None or _fingerprint(profile) != running.fingerprint:
                self._running.pop(profile_id, None)
                self._retire(running)

    async def close(self) -> None:
        for running in self._running.values():
            running.stop.set()
        tasks = [r.task for r in self._running.values()] + list(self._retired)
        for task in self._retired:
            task.cancel()
        self._running.clear()
        if tasks:
            await asyncio.wait(tasks, timeout=10)


PEPPER_ENV = "MCP_GATEWAY_KEY_PEPPER"
SESSION_KEYS_ENV = "MCP_GATEWAY_SESSION_KEYS"
CONSOLE_KEY_LABEL = b"console-session"  # a key per purpose: console cookie keys sign nothing else
MCP_SESSION_KEY_LABEL = b"mcp-session"
ADMIN_TOKEN_ENV = "MCP_GATEWAY_ADMIN_TOKEN"  # noqa: S105 - a variable name, not a secret
PUBLIC_URL_ENV = "MCP_GATEWAY_PUBLIC_URL"


class StartupError(Exception):
    """The gateway cannot start; the message says how to fix it."""


class Gateway:
    def __init__(self, holder: ConfigHolder, store: Store, factory: BackendFactory, env: Mapping[str, str]) -> None:
        self.holder = holder
        self.store = store
        self.env = env
        self.limiter = Limiter(store)
        self.audit = AuditWriter(store)
        self.metrics = Metrics()
        self.admin_token = env.get(ADMIN_TOKEN_ENV) or None
        register_secret(self.admin_token)
        self.backends = BackendPool(self, factory)
        self.relay = Relay()
        self.streams = SessionStreams(self)
        self.policies = PolicyCache()
        self.discovery_indexes = Indexes()
        self.revealed = Revealed(self)
        self.revoked: RevokedSessions
        self.authenticator: Authenticator
        self.secret_keys: SecretKeyTable
        self.state_codec: AESGCMRequestStateCodec
        self.signer: SessionSigner
        self.console_keys: list[bytes]
        self.connections: Connections
        self.started = False
        # One INFO line per MCP request (`serve --access-log`); refusals and errors are logged regardless.
        self.access_log = False
        self.kubeconfig: str | None = None  # for clientSecretRef of tokenExchange and connection (`serve --kubeconfig`)
        self.exchanger = TokenExchanger()
        holder.on_change(self._config_changed)
        self.metrics.set_config(holder.generation, holder.digest, holder.config)

    async def start(self) -> None:
        await self.store.start()
        pepper = self._pepper()
        hasher = KeyHasher(pepper)
        self.audit.arguments_key = arguments_key(pepper)
        self.secret_keys = SecretKeyTable(hasher)
        self.authenticator = Authenticator(
            self.store, hasher, self.secret_keys, lambda: self.holder.config.gateway.allow_private_jwks
        )
        # Upstream tokens exchanged for callers (token_exchange.py); Secrets read only in Kubernetes.
        self.exchanger = TokenExchanger(lambda: self.holder.config.gateway.allow_private_jwks, self._secret_reader())
        env_keys = self._env_session_keys()
        self.signer = SessionSigner(env_keys or [self._default_session_key(pepper)])
        self.console_keys = self._console_keys(env_keys, pepper)
        self.state_codec = state_codec(self.signer.keys)
        self.revoked = RevokedSessions(self.store, self.signer.max_age)
        await self.revoked.load()
        self.connections = Connections(self.env, _connection_store(self.store), self._secret_reader())
        self.connections.publish = self.store.publish if self.store.shared else None
        self.connections.count = self.metrics.connection_event
        self.relay.publish = self.store.publish if self.store.shared else None
        await self.store.listen(self._replica_message)
        self.audit.start()
        self.started = True

    async def close(self) -> None:
        await self.backends.close()
        if self.started:
            await self.connections.close()
        await self.audit.stop()
        await self.store.close()

    def _secret_reader(self) -> SecretReader:
        return SecretReader(lambda: kube_core_api(self.kubeconfig))

    def _pepper(self) -> bytes:
        pepper = self.env.get(PEPPER_ENV, "")
        register_secret(pepper)
        if pepper:
            if len(pepper) < 16:
                raise StartupError(f"{PEPPER_ENV} must be at least 16 characters (e.g. `openssl rand -hex 32`)")
            return pepper.encode()
        if self.store.shared:
            raise StartupError(
                f"{PEPPER_ENV} is not set: with a database, API keys are hashed with this server-side secret "
                "and every replica needs the same value; set it, e.g. to the output of `openssl rand -hex 32`"
            )
        log.warning("%s is not set: using a random pepper; API keys created now stop working on restart", PEPPER_ENV)
        return secrets.token_bytes(32)

    def _env_session_keys(self) -> list[bytes]:
        keys = parse_keys(self.env.get(SESSION_KEYS_ENV, ""))
        for key in keys:
            register_secret(key.decode())
        return keys

    def _default_session_key(self, pepper: bytes) -> bytes:
        """The `Mcp-Session-Id` / requestState key when `MCP_GATEWAY_SESSION_KEYS` is unset.

        With a shared store, derived from the pepper every replica has, so sessions move between
        replicas and a copy of the database cannot seal a requestState; without one, random per
        process, like the ended sessions it remembers.
        """
        if not self.store.shared:
            return secrets.token_bytes(32)
        return hmac.new(pepper, MCP_SESSION_KEY_LABEL, hashlib.sha256).digest()

    def _console_keys(self, env_keys: list[bytes], pepper: bytes) -> list[bytes]:
        """Console cookie keys from environment secrets only: a database dump must not be enough to forge one.

        The session keys (newest first, so they rotate) and then the pepper. Without a shared store the
        logged-out sessions are forgotten on restart, so the cookies are too: a random key per process.
        """
        if not self.store.shared:
            return [secrets.token_bytes(32)]
        return [hmac.new(s, CONSOLE_KEY_LABEL, hashlib.sha256).digest() for s in [*env_keys, pepper]]

    async def _replica_message(self, payload: dict[str, Any]) -> None:
        kind = payload.get("kind")
        if kind == "answer":
            await self.relay.on_published(payload)
        elif kind == "subscription":
            self.streams.on_published(payload)
        elif kind == "reveal":
            self.revealed.on_published(payload)
        elif kind == "revoked":
            expires = payload.get("expires")
            self.revoked.add(str(payload.get("session")), float(expires) if isinstance(expires, int | float) else None)
        elif kind == "resync":
            await self.revoked.load()
        elif kind == CONNECTION_DELETED:
            self.connections.forget(payload)

    def public_base(self, request_base_url: str) -> str:
        """Where clients reach the gateway, without a trailing slash.

        `gateway.publicUrl` (routing config), else $MCP_GATEWAY_PUBLIC_URL, else the URL the
        request came in on (right only when no TLS-terminating proxy sits in front).
        """
        configured = self.holder.config.gateway.public_url or self.env.get(PUBLIC_URL_ENV)
        return (configured or request_base_url).rstrip("/")

    async def settle_continuation(self, envelope: str) -> None:
        """A verified continuation of the current call: free on its envelope's first use, else charged.

        Raises `LimitExceeded` / `LimitsUnavailable` like any charge.
        """
        digest = hashlib.sha256(envelope.encode()).digest()
        expires = datetime.now(UTC) + timedelta(seconds=TTL_SECONDS)
        try:
            if await self.store.claim_continuation(digest, expires):
                return
        except Exception as exc:  # the charge below applies gateway.limitsWhenStoreDown
            log.warning("cannot record a continuation, charging it: %s", type(exc).__name__)
        call = current_call.get()
        if call is not None:
            try:
                await self.limiter.admit(
                    call.config,
                    call.profile,
                    call.principal.caller,
                    rate=False,
                    charge=True,
                    tool=tool_name(call.message or {}),
                    subject=subject_of(call.principal),
                )
            except LimitExceeded as exceeded:
                self.metrics.limit_rejections.labels(call.profile.tenant, call.profile.id, exceeded.kind).inc()
                raise

    def _config_changed(self, config: RoutingConfig) -> None:
        self.policies.clear()
        self.discovery_indexes.forget({p.id for p in config.profiles if p.discovery.mode != "off"})
        self.metrics.set_config(self.holder.generation, self.holder.digest, config)
        with contextlib.suppress(RuntimeError):  # no running loop yet at start-up
            asyncio.get_running_loop()
            self.backends.reconcile(config)


def _connection_store(store: Store) -> ConnectionStore:
    """Connections live beside the store's other state: PostgreSQL rows or process memory."""
    pool = getattr(store, "pool", None) if store.shared else None
    return PostgresConnections(pool) if pool is not None else MemoryConnections()
