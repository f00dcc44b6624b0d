"""RFC 8693 token exchange: the caller's OIDC token, exchanged for one made for an upstream.

An Upstream with `tokenExchange` gets, for each call of an OIDC-authenticated caller, a
token the provider issued for the upstream's `audience` (and optional `scopes`), sent as
`Authorization: Bearer <token>`. The caller's own token is never sent upstream (the front
strips `Authorization`); the upstream learns who calls from a token made for it.

- **Cache.** A token is kept per (caller token, provider, client, audience, scopes) until
  `refreshBeforeSeconds` before it expires (at most half its lifetime), in a bounded LRU.
  Concurrent calls needing the same token share one exchange. A cached call costs a SHA-256
  of the caller's token and a dict lookup (`make bench`: token-exchange section).
- **Errors.** A caller without a token (an API key) on an exchange upstream, and a refusal by
  the provider (RFC 6749 error JSON, e.g. `invalid_target`, `access_denied`), are the call's
  error; a provider that cannot be reached, times out or answers 5xx is `ExchangeUnavailable`
  (the front answers 503 with `Retry-After`). Nothing is cached for a failed exchange.
- **Egress.** The token endpoint comes from a tenant's routing config, so it is fetched like
  the JWKS (auth/oidc.py): https only, public addresses only, unless
  `gateway.allowPrivateJwks` admits private ones (and plain http for a loopback provider).
- **Secrets.** The client secret is read from a file, an environment variable or a
  Kubernetes Secret when an exchange is made (so a rotated file is picked up); it is
  registered for log masking and never logged, nor are tokens.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import httpx
from mcp_adapter.egress import AddressPolicy, BlockedAddress, guarded_client
from mcp_common.jsonlog import register_secret
from starlette.datastructures import Headers

from mcp_gateway.auth import Principal
from mcp_gateway.auth.oidc import jwks_url_problem
from mcp_gateway.config import Profile, TokenExchange
from mcp_gateway.connections.settings import ClientSecretSource, SecretKeyRef
from mcp_gateway.rules import Kind
from mcp_gateway.trace import UpstreamContextAuth, upstream_headers

log = logging.getLogger("mcp_gateway.token_exchange")

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 (a URN)
# Seconds a client waits before retrying when the provider could not exchange the token.
RETRY_AFTER = 10
MAX_ENTRIES = 10_000
DEFAULT_LIFETIME = 60.0  # a token answer without expires_in (and no JWT exp) is kept this long
MAX_DESCRIPTION = 200  # of the provider's error_description, in the caller's error
DISCOVERY_SECONDS = 3600.0


class ExchangeRefused(Exception):
    """The token cannot be exchanged for this caller; the message is safe to show the caller."""


class ExchangeUnavailable(Exception):
    """The provider could not be asked (down, timing out, answering 5xx); try again later."""


@dataclass(frozen=True)
class _Entry:
    token: str
    fresh_until: float  # monotonic


# The token exchanged for the current request: (upstream name, token). Set by the front just
# before the request goes to the backend; the upstream's request hooks (trace.py) read it.
exchanged_token: ContextVar[tuple[str, str] | None] = ContextVar("mcp_gateway_exchanged", default=None)


def bearer_for(upstream: str) -> list[tuple[str, str]]:
    """`Authorization` for a request to `upstream`, when the current request exchanged a token for it."""
    current = exchanged_token.get()
    if current is None or current[0] != upstream:
        return []
    return [("authorization", f"Bearer {current[1]}")]


class SecretReader:
    """The client secret named by a `tokenExchange` or `connection` block, read when it is used.

    `what` names the setting in errors ("token exchange", "connection"). A missing or unreadable
    secret raises ExchangeRefused; a Kubernetes API that cannot be asked raises ExchangeUnavailable.
    """

    def __init__(self, kube_api: Callable[[], Any] | None = None) -> None:
        self._kube_api = kube_api
        self._api: Any = None

    async def read(self, settings: ClientSecretSource, what: str = "token exchange") -> str:
        if settings.client_secret_file:
            value = await asyncio.to_thread(_read_file, settings.client_secret_file, what)
        elif settings.client_secret_env:
            value = os.environ.get(settings.client_secret_env, "")
            if not value:
                raise ExchangeRefused(
                    f"the gateway's client secret for {what} is not set "
                    f"(environment variable {settings.client_secret_env})"
                )
        else:
            assert settings.client_secret_ref is not None
            value = await asyncio.to_thread(self._read_secret, settings.client_secret_ref, what)
        register_secret(value)
        return value

    def _read_secret(self, ref: SecretKeyRef, what: str) -> str:
        if self._kube_api is None:
            raise ExchangeRefused(f"clientSecretRef {ref.namespace}/{ref.name} needs the gateway to run in Kubernetes")
        if self._api is None:
            self._api = self._kube_api()
        try:
            secret = self._api.read_namespaced_secret(ref.name, ref.namespace)
        except Exception as exc:  # the kubernetes client raises ApiException, urllib3 errors...
            log.error("cannot read Secret %s/%s for %s: %s", ref.namespace, ref.name, what, type(exc).__name__)
            raise ExchangeUnavailable(f"the gateway cannot read Secret {ref.namespace}/{ref.name}") from None
        raw = (secret.data or {}).get(ref.key)
        if not raw:
            raise ExchangeRefused(f"Secret {ref.namespace}/{ref.name} has no key {ref.key!r}")
        return base64.b64decode(raw).decode("utf-8").strip()


def _read_file(path: str, what: str) -> str:
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        log.error("cannot read the %s client secret file %s: %s", what, path, exc.strerror)
        raise ExchangeRefused(f"the gateway cannot read its {what} client secret ({path})") from None
    if not value:
        raise ExchangeRefused(f"the gateway's {what} client secret file {path} is empty")
    return value


class TokenExchanger:
    """Exchanges and caches upstream tokens; one per gateway process."""

    def __init__(
        self,
        allow_private: Callable[[], bool] = lambda: False,
        secrets: SecretReader | None = None,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allow_private = allow_private
        self.secrets = secrets or SecretReader()
        self.max_entries = max_entries
        self.clock = clock
        self._cache: OrderedDict[tuple[str, ...], _Entry] = OrderedDict()
        self._pending: dict[tuple[str, ...], asyncio.Future[_Entry]] = {}
        self._endpoints: dict[str, tuple[str, float]] = {}  # issuer -> (token endpoint, fetched at)
        self.exchanges = 0  # exchanges made (successful or not): what the cache saves

    async def token(
        self, settings: TokenExchange, subject_token: str, counted: Callable[[str], None] = lambda outcome: None
    ) -> str:
        """A token for `settings.audience` on behalf of the holder of `subject_token`.

        `counted(outcome)` is called when this call made an exchange: ok, refused or unavailable.
        """
        key = _cache_key(settings, subject_token)
        entry = self._cache.get(key)
        if entry is not None and entry.fresh_until > self.clock():
            self._cache.move_to_end(key)
            return entry.token
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = asyncio.get_running_loop().create_future()
            try:
                entry = await self._exchange(settings, subject_token)
            except BaseException as exc:
                if isinstance(exc, ExchangeRefused | ExchangeUnavailable):
                    counted("refused" if isinstance(exc, ExchangeRefused) else "unavailable")
                pending.set_exception(exc)
                pending.exception()  # retrieved: no "never retrieved" warning when nobody else waited
                raise
            finally:
                self._pending.pop(key, None)
            pending.set_result(entry)
            self._store(key, entry)
            counted("ok")
            return entry.token
        return (await asyncio.shield(pending)).token

    def _store(self, key: tuple[str, ...], entry: _Entry) -> None:
        self._cache[key] = entry
        self._cache.move_to_end(key)
        now = self.clock()
        # Least recently used first: drop those past their time (their callers' tokens have usually
        # expired too), then any beyond the bound.
        while self._cache:
            oldest = next(iter(self._cache.values()))
            if len(self._cache) <= self.max_entries and oldest.fresh_until > now:
                break
            self._cache.popitem(last=False)

    async def _exchange(self, settings: TokenExchange, subject_token: str) -> _Entry:
        self.exchanges += 1
        endpoint = await self._token_endpoint(settings)
        secret = await self.secrets.read(settings)
        form = {
            "grant_type": GRANT_TYPE,
            "subject_token": subject_token,
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "requested_token_type": ACCESS_TOKEN_TYPE,
            "audience": settings.audience,
        }
        if settings.scopes:
            form["scope"] = " ".join(settings.scopes)
        # client_secret_basic (RFC 6749 2.3.1): id and secret form-encoded, then Basic.
        basic = base64.b64encode(f"{quote(settings.client_id, safe='')}:{quote(secret, safe='')}".encode()).decode()
        headers = {"Authorization": f"Basic {basic}", "Accept": "application/json"}
        response = await self._post(endpoint, form, headers, settings.timeout_seconds)
        return self._entry(settings, response)

    async def _post(self, url: str, form: dict[str, str], headers: dict[str, str], seconds: float) -> httpx.Response:
        allow_private = self.allow_private()
        problem = jwks_url_problem(url, allow_private)
        if problem:
            raise ExchangeRefused(problem.replace("jwksUrl", "the token endpoint"))
        try:
            async with guarded_client(AddressPolicy.of(allow_private), timeout=seconds) as client:
                return await client.post(url, data=form, headers=headers)
        except BlockedAddress as exc:
            reason = str(exc).split("; set allowPrivateNetwork", 1)[0]
            raise ExchangeRefused(f"the token endpoint is not reachable from the gateway: {reason}") from None
        except httpx.HTTPError as exc:
            log.warning("token exchange at %s failed: %s", url, type(exc).__name__)
            raise ExchangeUnavailable("the identity provider could not be reached to exchange the token") from None

    def _entry(self, settings: TokenExchange, response: httpx.Response) -> _Entry:
        if response.status_code >= 500:
            log.warning("token exchange: the provider answered %d", response.status_code)
            raise ExchangeUnavailable(f"the identity provider answered {response.status_code} to the token exchange")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ExchangeUnavailable("the identity provider's token exchange answer is not JSON")
        if response.status_code != 200:
            error = str(body.get("error", response.status_code))[:64]
            description = str(body.get("error_description", ""))[:MAX_DESCRIPTION]
            if response.status_code == 401:  # the gateway's own client, not the caller, was refused
                log.error("token exchange: the provider refused client %r (check id and secret)", settings.client_id)
            raise ExchangeRefused(
                f"the identity provider refused to exchange the caller's token for audience {settings.audience!r}: "
                f"{error}" + (f" ({description})" if description else "")
            )
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise ExchangeUnavailable("the identity provider's token exchange answer has no access_token")
        register_secret(token)
        lifetime = _lifetime(body, token)
        margin = min(settings.refresh_before_seconds, lifetime / 2)
        return _Entry(token, self.clock() + lifetime - margin)

    async def _token_endpoint(self, settings: TokenExchange) -> str:
        if settings.token_endpoint:
            return settings.token_endpoint
        issuer = (settings.issuer or "").rstrip("/")
        known = self._endpoints.get(issuer)
        if known is not None and self.clock() - known[1] < DISCOVERY_SECONDS:
            return known[0]
        url = f"{issuer}/.well-known/openid-configuration"
        allow_private = self.allow_private()
        problem = jwks_url_problem(url, allow_private)
        if problem:
            raise ExchangeRefused(problem.replace("jwksUrl", "the issuer"))
        try:
            async with guarded_client(AddressPolicy.of(allow_private), timeout=settings.timeout_seconds) as client:
                response = await client.get(url)
                response.raise_for_status()
                endpoint = response.json().get("token_endpoint")
        except BlockedAddress as exc:
            raise ExchangeRefused(f"the issuer is not reachable from the gateway: {exc}") from None
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            log.warning("token exchange: discovery at %s failed: %s", url, type(exc).__name__)
            raise ExchangeUnavailable("the identity provider's discovery document could not be fetched") from None
        if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
            raise ExchangeUnavailable("the identity provider's discovery document names no token_endpoint")
        self._endpoints[issuer] = (endpoint, self.clock())
        return endpoint


def _cache_key(settings: TokenExchange, subject_token: str) -> tuple[str, ...]:
    digest = hashlib.sha256(subject_token.encode()).hexdigest()
    where = settings.token_endpoint or settings.issuer or ""
    return (digest, where, settings.client_id, settings.audience, " ".join(settings.scopes))


def _lifetime(body: dict[str, Any], token: str) -> float:
    expires_in = body.get("expires_in")
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
        return float(expires_in)
    exp = _jwt_exp(token)
    return max(0.0, exp - time.time()) if exp is not None else DEFAULT_LIFETIME


def _jwt_exp(token: str) -> float | None:
    """The `exp` of a JWT-shaped token (not verified: only to know how long to keep it)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) else None


def upstream_hooks(upstream: str, send_caller: bool) -> tuple[UpstreamContextAuth, Callable[[], list[tuple[str, str]]]]:
    """The SDK client's auth and the relay's header hook of an exchange upstream: trace.py's headers
    plus the token the current request exchanged for `upstream`."""
    base = upstream_headers(send_caller)

    def headers() -> list[tuple[str, str]]:
        return base() + bearer_for(upstream)

    return UpstreamContextAuth(headers), headers


_TARGETS = {"tools/call": ("name", "tool"), "resources/read": ("uri", "resource"), "prompts/get": ("name", "prompt")}


def target_of(message: dict[str, Any] | None) -> tuple[Kind, str] | None:
    """(kind, name) of a request that goes to one upstream: a tool call, a resource read, a prompt get."""
    if message is None:
        return None
    key, kind = _TARGETS.get(str(message.get("method")), ("", ""))
    params = message.get("params")
    name = params.get(key) if key and isinstance(params, dict) else None
    return (cast(Kind, kind), name) if isinstance(name, str) else None


def bearer_token(headers: Headers) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


async def exchange_for_request(
    exchanger: TokenExchanger,
    profile: Profile,
    principal: Principal,
    headers: Headers,
    message: dict[str, Any] | None,
    upstream_of: Callable[[Kind, str], str] | None,
    counted: Callable[[str, str], None] = lambda upstream, outcome: None,
) -> tuple[str, str] | None:
    """The (upstream, token) this request needs, exchanged (or cached); None when it needs none.

    Raises `ExchangeRefused` (a caller without an OIDC token, or the provider said no) and
    `ExchangeUnavailable` (the provider could not be asked).
    """
    target = target_of(message)
    if target is None or upstream_of is None or not any(u.token_exchange for u in profile.upstreams):
        return None
    name = upstream_of(*target)
    upstream = next((u for u in profile.upstreams if u.name == name), None)
    if upstream is None or upstream.token_exchange is None:
        return None
    subject = bearer_token(headers) if principal.kind == "oidc" else None
    if subject is None:
        counted(name, "no_token")
        raise ExchangeRefused(
            f"upstream {name!r} acts on behalf of the caller (token exchange) and needs an OAuth bearer token "
            f"from the identity provider; an {_credential_kind(principal)} cannot be exchanged"
        )
    return name, await exchanger.token(upstream.token_exchange, subject, lambda outcome: counted(name, outcome))


def _credential_kind(principal: Principal) -> str:
    return {"apiKey": "API key", "none": "anonymous call"}.get(principal.kind, principal.kind)
