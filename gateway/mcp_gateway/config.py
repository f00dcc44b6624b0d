"""The routing config: tenants and profiles (see docs/routing-config.md).

The pydantic model here is the contract with the operator, which renders the
same document into a ConfigMap. Field names are camelCase on the wire.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from pydantic.alias_generators import to_camel

from mcp_gateway.connections.settings import ClientSecretSource, ConnectionSettings, OAuthConnection

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# SEP-986 tool names: at most 128 of these characters.
_TOOL_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


def _check_label(value: str) -> str:
    if len(value) > 63 or not _LABEL.match(value):
        raise ValueError(f"{value!r} must be a DNS label: lowercase letters, digits and '-', at most 63 characters")
    return value


class Rate(_Model):
    per_second: float = Field(gt=0)
    burst: int = Field(ge=1)


class Quota(_Model):
    daily: int | None = Field(default=None, ge=0)
    monthly: int | None = Field(default=None, ge=0)


LimitDimension = Literal["subject", "tool"]
SUBJECT: LimitDimension = "subject"
_LIMIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_PERIOD_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


class CallRate(_Model):
    """`calls` tool calls per `per` (a token bucket refilled evenly; `burst` defaults to `calls`)."""

    calls: int = Field(ge=1, le=1_000_000_000)
    per: Literal["second", "minute", "hour", "day"] = "minute"
    burst: int | None = Field(default=None, ge=1)

    @property
    def per_second(self) -> float:
        return self.calls / _PERIOD_SECONDS[self.per]

    @property
    def bucket_size(self) -> int:
        return self.burst or self.calls


class CallLimit(_Model):
    """A named rate limit and/or quota on tool calls, counted per subject, per tool, or both (limits.py)."""

    name: str = Field(description="named in refusals and metrics")
    tools: list[str] = Field(default_factory=lambda: ["*"], min_length=1, max_length=64, description="tool globs")
    # Which calls share one count: [subject] (default) each caller subject its own, [tool] each
    # matching tool its own, both, or [] every matching call of the profile (or tenant) together.
    per: list[LimitDimension] = Field(default_factory=lambda: [SUBJECT], max_length=2)
    rate: CallRate | None = None
    quota: Quota | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _LIMIT_NAME.match(value):
            raise ValueError(f"limit name {value!r} must be 1-63 letters, digits, '.', '_' or '-'")
        return value

    @model_validator(mode="after")
    def _something_limited(self) -> CallLimit:
        if self.rate is None and (self.quota is None or (self.quota.daily is None and self.quota.monthly is None)):
            raise ValueError(f"call limit {self.name!r} sets neither rate nor quota (daily/monthly)")
        if len(set(self.per)) != len(self.per):
            raise ValueError(f"call limit {self.name!r}: per lists {self.per}; name subject and tool at most once")
        return self


class Limits(_Model):
    rate: Rate | None = None
    per_key_rate: Rate | None = None
    quota: Quota | None = None
    # Named limits on tool calls by caller subject and/or tool glob (limits.py).
    call_limits: list[CallLimit] = Field(default_factory=list, max_length=64)
    timeout_seconds: float | None = Field(default=None, gt=0)
    tool_timeouts: dict[str, float] = Field(default_factory=dict)

    @field_validator("call_limits")
    @classmethod
    def _unique_limit_names(cls, value: list[CallLimit]) -> list[CallLimit]:
        names = [c.name for c in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"callLimits names must be unique: {dupes}")
        return value


class SecretRef(_Model):
    """A Kubernetes Secret by namespace and name: only the reference, never its values."""

    namespace: str
    name: str = Field(min_length=1, max_length=253)

    _namespace_is_label = field_validator("namespace")(_check_label)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class ApiKeySources(_Model):
    """Where a tenant's API keys come from: the admin API and/or Secrets (each value one key)."""

    admin_api: bool = True
    secret_refs: list[SecretRef] = Field(default_factory=list, max_length=64)


class Tenant(_Model):
    id: str
    display_name: str | None = None
    limits: Limits = Field(default_factory=Limits)
    api_keys: ApiKeySources = Field(default_factory=ApiKeySources)

    _id_is_label = field_validator("id")(_check_label)


# Failure kinds a retry may answer (mcp_gateway.retry says which calls are safe to retry).
Failure = Literal["unavailable", "error", "timeout"]


class RetrySettings(_Model):
    """`retries` of a profile or an upstream; unset fields fall back (upstream -> profile -> default)."""

    attempts: int = Field(default=3, ge=1, le=10, description="tries in all, the first included; 1 = no retry")
    backoff_base_seconds: float = Field(default=0.2, ge=0, le=60, description="wait before the first retry")
    backoff_max_seconds: float = Field(default=2.0, ge=0, le=300, description="cap of the doubling waits")
    jitter: float = Field(default=0.5, ge=0, le=1, description="share of each wait that is random (0-1)")
    retry_on: tuple[Failure, ...] = Field(default=("unavailable", "error", "timeout"), description="failure kinds")


class HealthCheck(_Model):
    """Active MCP-level probe of an upstream (`server/discover`, or `initialize` + `ping`); see health.py."""

    # False for an upstream that answers only with a user's own credentials: it is never probed as
    # the gateway's system user and is reported `unprobed` (its breaker still watches real calls).
    enabled: bool = True
    interval_seconds: float = Field(default=10, ge=0.05, le=3600)
    timeout_seconds: float = Field(default=5, gt=0, le=300)
    # Consecutive probe results needed to change state: the hysteresis that keeps status from flapping.
    healthy_threshold: int = Field(default=2, ge=1, le=100)
    unhealthy_threshold: int = Field(default=3, ge=1, le=100)
    # Leave the upstream's tools out of tools/list while it is unhealthy (sessions get list_changed).
    hide_tools_when_unhealthy: bool = False


class CircuitBreaker(_Model):
    """Per-upstream circuit breaker over real tool calls; see breaker.py."""

    enabled: bool = True
    # Open after this many consecutive failed calls...
    consecutive_failures: int = Field(default=5, ge=1, le=1000)
    # ...or when this share of the last `windowCalls` calls failed (once at least `minimumCalls` were made).
    error_rate: float = Field(default=0.5, gt=0, le=1)
    window_calls: int = Field(default=20, ge=1, le=10_000)
    minimum_calls: int = Field(default=10, ge=1, le=10_000)
    # How long calls are refused before one trial call (half-open) may test the upstream again.
    open_seconds: float = Field(default=30, gt=0, le=3600)


class ToolAnnotationsOverride(_Model):
    """Tool annotations to add or replace (the upstream's others are kept)."""

    title: str | None = Field(default=None, max_length=256)
    read_only_hint: bool | None = None
    destructive_hint: bool | None = None
    idempotent_hint: bool | None = None
    open_world_hint: bool | None = None


class ToolOverride(_Model):
    """How one of the upstream's tools is shown to this profile's clients (overrides.py)."""

    name: str | None = None
    title: str | None = Field(default=None, max_length=256)
    description: str | None = Field(default=None, max_length=16_384)
    annotations: ToolAnnotationsOverride | None = None
    # Parameters the gateway fills in: removed from the tool's inputSchema, set on every call.
    fixed_arguments: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _sep986(cls, value: str | None) -> str | None:
        if value is not None and not _TOOL_NAME.match(value):
            raise ValueError(f"tool name {value!r} must be 1-128 of letters, digits, '.', '_' or '-' (SEP-986)")
        return value


class TokenExchange(ClientSecretSource):
    """RFC 8693 token exchange for an upstream (token_exchange.py): the caller's OIDC token is exchanged
    at the provider for one with the upstream's `audience`, which is what the upstream receives."""

    # Where to exchange: the token endpoint itself, or the issuer whose discovery document names it.
    token_endpoint: str | None = None
    issuer: str | None = None
    client_id: str = Field(min_length=1, max_length=256)
    # The gateway's client secret at the provider: exactly one of clientSecretFile, clientSecretEnv
    # and clientSecretRef (ClientSecretSource).
    audience: str = Field(min_length=1, max_length=1024)
    scopes: list[str] = Field(default_factory=list, max_length=64)
    # A cached token is replaced this long before it expires (at most half its lifetime).
    refresh_before_seconds: float = Field(default=30, ge=0, le=3600)
    timeout_seconds: float = Field(default=10, gt=0, le=120)

    @field_validator("token_endpoint", "issuer")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} must be an http(s) URL")
        return value

    @model_validator(mode="after")
    def _one_of_each(self) -> TokenExchange:
        if (self.token_endpoint is None) == (self.issuer is None):
            raise ValueError("tokenExchange needs exactly one of tokenEndpoint and issuer (discovery)")
        if len(self.secret_sources()) != 1:
            raise ValueError(
                "tokenExchange needs exactly one of clientSecretFile, clientSecretEnv and clientSecretRef "
                "(the gateway's confidential client at the provider)"
            )
        return self


class Upstream(_Model):
    name: str
    url: str
    prefix: Literal["auto", "always", "never"] = "auto"
    timeout_seconds: float = Field(default=30, gt=0)
    headers_from_env: dict[str, str] = Field(default_factory=dict)
    retries: RetrySettings | None = None  # overrides the profile's, field by field
    # Send `x-mcp-caller: <tenant>/<caller>` (per-caller isolation in an adapter with trustCallerHeader).
    # Off by default: a third-party MCP server has no business learning tenant and key ids.
    send_caller_header: bool = False
    health_check: HealthCheck = Field(default_factory=HealthCheck)
    circuit_breaker: CircuitBreaker = Field(default_factory=CircuitBreaker)
    # Keyed by the upstream's own tool name (before any prefix).
    tool_overrides: dict[str, ToolOverride] = Field(default_factory=dict, max_length=1000)
    # Send the caller's token exchanged for this upstream's audience (token_exchange.py); OIDC callers only.
    token_exchange: TokenExchange | None = None
    # Each caller's own account at a third-party OAuth server (connections/).
    connection: OAuthConnection | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"upstream url {value!r} must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _renames_are_unique(self) -> Upstream:
        exposed: dict[str, str] = {}
        for original, override in self.tool_overrides.items():
            name = override.name or original
            if name in exposed:
                raise ValueError(
                    f"upstream {self.name!r}: toolOverrides would name both {exposed[name]!r} and {original!r} "
                    f"{name!r}; give one of them another name"
                )
            exposed[name] = original
        return self

    @model_validator(mode="after")
    def _one_caller_credential(self) -> Upstream:
        # Both would set the upstream's Authorization header for the same call.
        if self.token_exchange is not None and self.connection is not None:
            raise ValueError(
                f"upstream {self.name!r}: set tokenExchange or connection, not both "
                "(each supplies the caller's bearer token for this upstream)"
            )
        return self


class IdentityClaims(_Model):
    """Which token claims name the caller: recorded in the audit log and offered to policy."""

    subject: str = Field(default="sub", min_length=1, max_length=128)
    groups: str = Field(default="groups", min_length=1, max_length=128)
    email: str = Field(default="email", min_length=1, max_length=128)


class OidcSettings(_Model):
    issuer: str
    audience: str | list[str]
    jwks_url: str
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    leeway_seconds: float = Field(default=30, ge=0)
    required_scopes: list[str] = Field(default_factory=list)
    required_claims: dict[str, Any] = Field(default_factory=dict)
    # Claim naming the caller's tenant; when set it must equal the profile's tenant.
    tenant_claim: str | None = None
    identity_claims: IdentityClaims = Field(default_factory=IdentityClaims)
    # JWKS cache: refetched after this long, and on an unknown key id at most this often.
    jwks_cache_seconds: float = Field(default=300, gt=0)
    jwks_min_refetch_seconds: float = Field(default=10, ge=0)

    @field_validator("algorithms")
    @classmethod
    def _no_none(cls, value: list[str]) -> list[str]:
        allowed = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
        bad = [alg for alg in value if alg not in allowed]
        if bad or not value:
            raise ValueError(f"algorithms {bad or value} not allowed; use asymmetric ones from {sorted(allowed)}")
        return value


AuthMethod = Literal["apiKey", "oidc"]


class Auth(_Model):
    """`mode` (one way in) or `methods` (any of several, e.g. [apiKey, oidc]); not both."""

    mode: Literal["apiKey", "oidc", "none"] | None = None  # unset (and no methods): apiKey
    methods: tuple[AuthMethod, ...] | None = Field(default=None, min_length=1, max_length=2)
    oidc: OidcSettings | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Auth:
        if self.methods is not None:
            if self.mode is not None:
                raise ValueError("auth has both mode and methods; use one: methods: [apiKey, oidc] or mode: oidc")
            if len(set(self.methods)) != len(self.methods):
                raise ValueError(f"auth.methods {list(self.methods)} names a method twice")
        if "oidc" in self.accepted and self.oidc is None:
            raise ValueError("auth accepts oidc but auth.oidc (issuer, audience, jwksUrl) is missing")
        return self

    @property
    def accepted(self) -> tuple[AuthMethod, ...]:
        """The methods a caller may use, in the order they are tried; () for an anonymous profile."""
        if self.methods is not None:
            return self.methods
        mode = self.mode or "apiKey"
        return () if mode == "none" else (mode,)

    @property
    def anonymous(self) -> bool:
        return not self.accepted


class Rules(_Model):
    allow: list[str] = Field(default_factory=lambda: ["*"])
    deny: list[str] = Field(default_factory=list)


RuleKind = Literal["tool", "resource", "prompt"]
RULE_KINDS: tuple[RuleKind, ...] = ("tool", "resource", "prompt")
_RULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class PolicyRule(_Model):
    """One CEL rule of `policy.rules` (rules.py: variables, precedence, evaluation)."""

    name: str = Field(description="named in refusals; the expression never is")
    effect: Literal["allow", "deny"]
    when: str = Field(min_length=1, max_length=4096, description="CEL expression, true when the rule matches")
    kinds: list[RuleKind] = Field(default_factory=lambda: list(RULE_KINDS), min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _RULE_NAME.match(value):
            raise ValueError(f"rule name {value!r} must be 1-63 letters, digits, '.', '_' or '-'")
        return value

    @model_validator(mode="after")
    def _compiles(self) -> PolicyRule:
        from mcp_gateway.rules import RuleError, compile_rule  # the CEL runtime, loaded only for rules

        try:
            compile_rule(self.when)
        except RuleError as exc:
            raise ValueError(f"rule {self.name!r} does not compile: {exc}") from None
        return self


class Policy(_Model):
    tools: Rules = Field(default_factory=Rules)
    resources: Rules = Field(default_factory=Rules)
    prompts: Rules = Field(default_factory=Rules)
    idempotent_tools: list[str] = Field(default_factory=list)
    # How tool arguments are written to the audit log.
    audit_arguments: Literal["hash", "redact", "omit"] = "hash"
    # Per-caller rules in CEL, applied after the globs above (rules.py).
    rules: list[PolicyRule] = Field(default_factory=list, max_length=256)

    @field_validator("rules")
    @classmethod
    def _unique_rule_names(cls, value: list[PolicyRule]) -> list[PolicyRule]:
        names = [r.name for r in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule names must be unique within a policy: {dupes}")
        return value


class Discovery(_Model):
    """Tool discovery: `search` lists meta-tools (search_tools, describe_tools, call_tool) instead of every
    tool; `hybrid` does the same except for clients that ask for the full list (discovery/serve.py)."""

    mode: Literal["off", "search", "hybrid"] = "off"
    # Tools listed as well in search mode (globs over the profile's tool names; policy still applies).
    always_visible: list[str] = Field(default_factory=list, max_length=256)
    max_results: int = Field(default=10, ge=1, le=50)
    # Handshake sessions: tools found by search_tools join the session's tools/list (list_changed sent).
    reveal: bool = False
    # `semantic`: BM25 fused with a sentence-embedding model shipped in an optional package
    # (discovery/semantic.py); lexical when the package is not installed.
    ranking: Literal["lexical", "semantic"] = "lexical"

    @field_validator("mode", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        # YAML 1.1 reads an unquoted `off` as false.
        return "off" if value is False else value


class Profile(_Model):
    id: str
    tenant: str
    upstreams: list[Upstream] = Field(min_length=1)
    auth: Auth = Field(default_factory=Auth)
    policy: Policy = Field(default_factory=Policy)
    limits: Limits = Field(default_factory=Limits)
    retries: RetrySettings | None = None
    discovery: Discovery = Field(default_factory=Discovery)

    _id_is_label = field_validator("id")(_check_label)

    @field_validator("upstreams")
    @classmethod
    def _unique_upstreams(cls, value: list[Upstream]) -> list[Upstream]:
        names = [u.name for u in value]
        if len(names) != len(set(names)):
            raise ValueError(f"upstream names must be unique within a profile: {names}")
        return value

    @model_validator(mode="after")
    def _connections_need_oidc(self) -> Profile:
        connected = [u.name for u in self.upstreams if u.connection is not None]
        if connected and "oidc" not in self.auth.accepted:
            raise ValueError(
                f"profile {self.id!r}: upstreams {connected} use per-user connections, which need OIDC sign-in; "
                "add oidc to the profile's auth"
            )
        return self


class GatewaySettings(_Model):
    """Optional transport settings; all have safe defaults."""

    allowed_origins: list[str] = Field(default_factory=list)
    max_request_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    # Bodies of console forms and admin API requests (413 beyond): small documents only.
    max_admin_request_bytes: int = Field(default=64 * 1024, ge=1024)
    # Rate limits and quotas while the database is unreachable: refuse (503) or admit uncounted.
    limits_when_store_down: Literal["closed", "open"] = "closed"
    # PostgreSQL commit of rate/quota counts: `async` acknowledges before the WAL flush (a database
    # crash may forget the last fraction of a second of counts), `sync` waits for it.
    limits_commit: Literal["async", "sync"] = "async"
    # Upper bound of `ttlMs` on list results (the upstreams' own hints may only lower it).
    max_list_ttl_ms: int = Field(default=30_000, ge=0)
    # OIDC jwksUrl on private/loopback addresses (and http:// for loopback): for tests and local issuers only.
    allow_private_jwks: bool = False
    # The URL clients reach the gateway at (behind a TLS ingress): OAuth metadata, WWW-Authenticate, console.
    public_url: str | None = None
    # Per-user connections: how users sign in to connect (connections/settings.py).
    connections: ConnectionSettings = Field(default_factory=ConnectionSettings)

    @field_validator("public_url")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(
                f"publicUrl {value!r} must be an absolute http(s) URL without query, e.g. https://mcp.example.com"
            )
        return value.rstrip("/")


class RoutingConfig(_Model):
    version: Literal[1] = 1
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    tenants: list[Tenant] = Field(default_factory=list)
    profiles: list[Profile] = Field(default_factory=list)
    # Lookups by id: every request looks its profile (and tenant) up, tools/list once per tool.
    _profiles: dict[str, Profile] = PrivateAttr(default_factory=dict)
    _tenants: dict[str, Tenant] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _references(self) -> RoutingConfig:
        tenant_ids = [t.id for t in self.tenants]
        if len(tenant_ids) != len(set(tenant_ids)):
            raise ValueError("tenant ids must be unique")
        profile_ids = [p.id for p in self.profiles]
        if len(profile_ids) != len(set(profile_ids)):
            raise ValueError("profile ids must be unique")
        for profile in self.profiles:
            if profile.tenant not in tenant_ids:
                raise ValueError(f"profile {profile.id!r} names unknown tenant {profile.tenant!r}; add it to tenants")
        owners: dict[str, str] = {}
        for tenant in self.tenants:
            for ref in tenant.api_keys.secret_refs:
                if owners.setdefault(str(ref), tenant.id) != tenant.id:
                    raise ValueError(
                        f"Secret {ref} holds API keys of tenants {owners[str(ref)]!r} and {tenant.id!r}; "
                        "a key Secret belongs to one tenant"
                    )
        self._profiles = {p.id: p for p in self.profiles}
        self._tenants = {t.id: t for t in self.tenants}
        return self

    def key_secrets(self) -> dict[str, str]:
        """`namespace/name` of every API-key Secret -> the tenant whose keys it holds."""
        return {str(ref): t.id for t in self.tenants for ref in t.api_keys.secret_refs}

    def profile(self, profile_id: str) -> Profile | None:
        return self._profiles.get(profile_id)

    def tenant(self, tenant_id: str) -> Tenant | None:
        return self._tenants.get(tenant_id)


def parse_config(text: str) -> RoutingConfig:
    """Parse YAML or JSON text; raises ValueError (incl. pydantic's) with a readable message."""
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise ValueError(f"routing config is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError("routing config must be a mapping with 'tenants' and 'profiles'")
    return RoutingConfig.model_validate(data)


def load_config_file(path: str | Path) -> RoutingConfig:
    return parse_config(Path(path).read_text())


def profile_timeouts(config: RoutingConfig, profile: Profile) -> tuple[float | None, dict[str, float]]:
    """The profile's call timeout and per-tool timeouts, falling back to the tenant's."""
    tenant = config.tenant(profile.tenant)
    tenant_limits = tenant.limits if tenant else Limits()
    timeout = profile.limits.timeout_seconds or tenant_limits.timeout_seconds
    return timeout, {**tenant_limits.tool_timeouts, **profile.limits.tool_timeouts}


def dumps_json(config: RoutingConfig) -> str:
    return json.dumps(config.model_dump(by_alias=True, mode="json"))
