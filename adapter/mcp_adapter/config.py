"""Adapter configuration: the YAML file `mcp-adapter --config FILE` reads.

Validated up front with pydantic. `load_config(path)` raises `ConfigError`
whose `problems` list holds one human message per problem, each naming the
field path (`sources[1].command`) and what was expected, so a bad file stops
start-up with every mistake reported at once.

Secrets never sit in the file: env values, headers and upstream credentials
are given as `{fromEnv: VAR}` (optionally with a `prefix`, e.g. "Bearer ")
and resolved at start-up; resolved values are registered with
`mcp_common.jsonlog.register_secret` so they are masked in every log line.

Example:

    server: {name: my-adapter, prefixSeparator: "__"}
    sources:
      - name: time
        type: stdio
        command: mcp-server-time
        env: {TZ: {fromEnv: LOCAL_TZ}}
        scope: per-caller
      - name: pets
        type: openapi
        spec: ./petstore.json
        auth: {type: bearer, token: {fromEnv: PETS_TOKEN}}
        allowedNetworks: [10.0.12.0/24]   # private targets tools may call (else public only)

`protocol` (stdio and mcp sources): `auto` (default) serves each client
through an upstream session of its own era when the server speaks it, and
bridges the other era when the server speaks only one. For `stdio` that means
one child per caller scope for a single-era server (most stdio servers today:
handshake only), but a child per era in use for a server speaking both: such a
server may implement an interaction in one era's terms only (a tool returning
`InputRequiredResult` cannot answer on a handshake session; a tool sending
`elicitation/create` as a server request cannot on a 2026-07-28 one), so one
bridged child would lose what the server itself refuses (13 conformance
scenarios against the test server; details in `sources/mcp_source.py`). The
price is a second process whose in-memory state is separate. `legacy` or
`2026-07-28` pins one era: exactly one child, the other era bridged.

`allowPrivateNetwork` / `allowedNetworks` (openapi and http sources): tools
may only reach public addresses unless private, loopback or link-local ones
are allowed wholesale or by CIDR range; the address checked is the one
connected to (see `egress.py`).
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from mcp_common.jsonlog import register_secret
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# SEP-986: tool names use only these characters, at most 128 of them.
NAME_CHARS = re.compile(r"^[A-Za-z0-9._-]+$")
MAX_NAME_LEN = 128


class ConfigError(Exception):
    """A configuration that cannot be used; `problems` has one message per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid adapter configuration:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class FromEnv(_Model):
    """A value read from an environment variable at start-up."""

    from_env: str = Field(alias="fromEnv")
    prefix: str = ""
    optional: bool = False


EnvValue = str | FromEnv


def resolve(value: EnvValue | None, *, secret: bool = True) -> str | None:
    """The concrete value; env-sourced values are registered as secrets for log masking."""
    if value is None or isinstance(value, str):
        return value
    raw = os.environ.get(value.from_env)
    if raw is None:
        if value.optional:
            return None
        raise ConfigError([f"environment variable {value.from_env!r} is not set (referenced with fromEnv)"])
    if secret:
        register_secret(raw)
    return value.prefix + raw


def missing_env(value: Any, path: str) -> list[str]:
    """Problems for every non-optional `fromEnv` below `value` whose variable is unset."""
    problems: list[str] = []
    if isinstance(value, FromEnv):
        if not value.optional and value.from_env not in os.environ:
            problems.append(f"{path}: environment variable {value.from_env!r} is not set")
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            problems += missing_env(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, dict):
        for key, item in value.items():
            problems += missing_env(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            problems += missing_env(item, f"{path}[{i}]")
    return problems


class PoolConfig(_Model):
    """Bounds of a per-caller session pool."""

    max_callers: int = Field(default=64, ge=1, alias="maxCallers")
    max_per_caller: int = Field(default=1, ge=1, alias="maxPerCaller")
    idle_seconds: float = Field(default=300.0, gt=0, alias="idleSeconds")


class RestartConfig(_Model):
    initial_backoff: float = Field(default=0.5, gt=0, alias="initialBackoff")
    max_backoff: float = Field(default=30.0, gt=0, alias="maxBackoff")


class _SourceBase(_Model):
    name: str = Field(min_length=1, max_length=64)
    prefix: str | None = None
    prefix_policy: Literal["always", "auto", "never"] = Field(default="auto", alias="prefixPolicy")
    required: bool = True
    timeout_seconds: float = Field(default=60.0, gt=0, alias="timeoutSeconds")

    @field_validator("name", "prefix")
    @classmethod
    def _valid_name(cls, value: str | None) -> str | None:
        if value is not None and not NAME_CHARS.match(value):
            raise ValueError("must use only letters, digits, '.', '_' or '-' (SEP-986 name characters)")
        return value

    @property
    def effective_prefix(self) -> str:
        return self.prefix if self.prefix is not None else self.name


class _McpSourceBase(_SourceBase):
    scope: Literal["shared", "per-caller"] = "shared"
    pool: PoolConfig = PoolConfig()
    protocol: Literal["auto", "legacy", "2026-07-28"] = Field(
        default="auto",
        description="auto: serve each client through an upstream session of its own era when the server speaks it "
        "(a dual-era stdio server gets a child per era in use); legacy / 2026-07-28: one era, the other bridged",
    )
    connect_timeout_seconds: float = Field(default=30.0, gt=0, alias="connectTimeoutSeconds")


class StdioSource(_McpSourceBase):
    type: Literal["stdio"]
    command: str = Field(min_length=1)
    args: list[str] = []
    env: dict[str, EnvValue] = {}
    cwd: str | None = None
    restart: RestartConfig = RestartConfig()
    stop_grace_seconds: float = Field(default=5.0, gt=0, alias="stopGraceSeconds")


class ExchangedAuth(_Model):
    """The bearer token the gateway sends with each call (exchanged.py): `exchanged`, the caller's token
    exchanged for this API (the gateway upstream's tokenExchange); `connection`, the access token of the
    caller's own connected account at a third-party service (the gateway upstream's connection). The
    adapter relays either the same way; the type says which gateway setting must supply it."""

    type: Literal["exchanged", "connection"]


class McpRemoteSource(_McpSourceBase):
    type: Literal["mcp"]
    url: str = Field(pattern=r"^https?://")
    headers: dict[str, EnvValue] = {}
    # The caller's token the gateway sends with each call (exchanged.py); calls made for no caller go without.
    auth: ExchangedAuth | None = None
    connect_timeout_seconds: float = Field(default=10.0, gt=0, alias="connectTimeoutSeconds")
    restart: RestartConfig = RestartConfig()


class BearerAuth(_Model):
    type: Literal["bearer"]
    token: EnvValue


class BasicAuth(_Model):
    type: Literal["basic"]
    username: EnvValue
    password: EnvValue


class ApiKeyAuth(_Model):
    type: Literal["apiKey"]
    name: str = Field(min_length=1)
    location: Literal["header", "query"] = Field(default="header", alias="in")
    value: EnvValue


Auth = Annotated[BearerAuth | BasicAuth | ApiKeyAuth | ExchangedAuth, Field(discriminator="type")]


class Filter(_Model):
    operation_ids: list[str] = Field(default=[], alias="operationIds")
    tags: list[str] = []
    paths: list[str] = []


class _HttpSourceBase(_SourceBase):
    base_url: str | None = Field(default=None, alias="baseUrl")
    auth: Auth | None = None
    headers: dict[str, EnvValue] = {}
    allow_private_network: bool = Field(default=False, alias="allowPrivateNetwork")
    allowed_networks: list[str] = Field(
        default=[],
        alias="allowedNetworks",
        description="CIDR ranges tools may call although not public (e.g. one in-cluster service's range)",
    )
    max_excerpt_bytes: int = Field(default=2048, ge=64, alias="maxExcerptBytes")
    max_response_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        alias="maxResponseBytes",
        description="response bodies beyond this many bytes are cut off; the tool result says so",
    )

    @field_validator("allowed_networks")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not a CIDR range such as 10.0.12.0/24 or fd00::/64") from None
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/]+", value):
            raise ValueError("must be an absolute http(s) URL such as https://api.example.com/v1")
        return value


class OpenApiSource(_HttpSourceBase):
    type: Literal["openapi"]
    spec: str = Field(min_length=1, description="path (relative to the config file) or http(s) URL")
    include: Filter | None = None
    exclude: Filter | None = None


class HttpToolConfig(_Model):
    name: str = Field(min_length=1, max_length=MAX_NAME_LEN)
    description: str = ""
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    url: str = Field(min_length=1, description="URL template, e.g. /users/{id}; absolute or relative to baseUrl")
    input_schema: dict[str, Any] = Field(default={"type": "object", "properties": {}}, alias="inputSchema")
    query: list[str] = []
    headers: dict[str, str] = Field(default={}, description="header name -> argument name")
    body: Literal["none", "arguments", "field"] | dict[str, str] = Field(
        default="none",
        description="'arguments': the remaining arguments as JSON body; 'field': argument `body` as the body; "
        "a mapping: JSON body key -> argument name",
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not NAME_CHARS.match(value):
            raise ValueError("must use only letters, digits, '.', '_' or '-' (SEP-986 name characters)")
        return value

    @model_validator(mode="after")
    def _placeholders_declared(self) -> HttpToolConfig:
        props = self.input_schema.get("properties", {})
        for placeholder in re.findall(r"{([^}]+)}", self.url):
            if placeholder not in props:
                raise ValueError(f"URL placeholder {{{placeholder}}} is not a property of inputSchema")
        return self


class HttpSource(_HttpSourceBase):
    type: Literal["http"]
    tools: list[HttpToolConfig] = Field(min_length=1)


SourceConfig = Annotated[StdioSource | McpRemoteSource | OpenApiSource | HttpSource, Field(discriminator="type")]


class ServerSettings(_Model):
    """The `server:` block.

    `trustCallerHeader` (default false) is the caller-identity contract with the gateway: when
    true, the `X-MCP-Caller` request header names the caller, and `scope: per-caller` sources
    keep one upstream session (stdio: one child) per value, with notifications routed by it.
    Only a trusted proxy may set it: the gateway sends `X-MCP-Caller` (stripping any value a
    client sent) and the operator sets `trustCallerHeader: true` on the adapters it deploys, which
    only the gateway reaches. When false the header is ignored, whoever sends it: a handshake
    client is scoped by its `Mcp-Session-Id`, a 2026-07-28 client is anonymous (one shared scope).
    `scope: per-caller` sources with `trustCallerHeader: false` are allowed (direct handshake
    clients are still kept apart) but log a WARNING at start-up and on reload: behind the
    gateway that combination gives every caller one shared upstream session.
    """

    name: str = "mcp-adapter"
    version: str = "0.1.0"
    instructions: str | None = None
    prefix_separator: str = Field(default="__", alias="prefixSeparator", min_length=1, max_length=4)
    page_size: int = Field(default=100, ge=1, le=10_000, alias="pageSize")
    allowed_hosts: list[str] = Field(
        default=[],
        alias="allowedHosts",
        description="Host header values served (host, host:port, *.domain, *); default: loopback names when "
        "bound to loopback, unchecked otherwise",
    )
    allowed_origins: list[str] = Field(
        default=[],
        alias="allowedOrigins",
        description="browser Origins accepted (e.g. https://app.example.com); default: loopback origins",
    )
    trust_caller_header: bool = Field(
        default=False,
        alias="trustCallerHeader",
        description="take the caller identity from the X-MCP-Caller header (set only behind the gateway)",
    )

    @field_validator("prefix_separator")
    @classmethod
    def _valid_separator(cls, value: str) -> str:
        if not NAME_CHARS.match(value):
            raise ValueError("must use only '.', '_', '-', letters or digits: names must stay SEP-986 valid")
        return value


class AdapterConfig(_Model):
    server: ServerSettings = ServerSettings()
    sources: list[SourceConfig] = Field(min_length=1)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", alias="logLevel")
    # One INFO line per HTTP request (uvicorn's access log and the upstream clients'); off by default.
    access_log: bool = Field(default=False, alias="accessLog")

    def caller_scope_warning(self) -> str | None:
        """Why `scope: per-caller` sources would be shared, when the config cannot tell callers apart.

        A warning, not an error: without the gateway in front, handshake clients are still told
        apart by their session. Behind the gateway every caller arrives through the same
        connections, so without `trustCallerHeader` they all share one upstream session.
        """
        per_caller = [s.name for s in self.sources if getattr(s, "scope", "shared") == "per-caller"]
        if not per_caller or self.server.trust_caller_header:
            return None
        return (
            f"sources {', '.join(per_caller)} have scope: per-caller but server.trustCallerHeader is false: "
            "behind the gateway every caller shares ONE upstream session (only handshake clients connecting "
            "directly are kept apart); set server.trustCallerHeader: true on adapters only the gateway reaches"
        )

    @model_validator(mode="after")
    def _unique_names(self) -> AdapterConfig:
        seen: dict[str, int] = {}
        for i, source in enumerate(self.sources):
            if source.name in seen:
                raise ValueError(f"sources[{i}].name: {source.name!r} is already used by sources[{seen[source.name]}]")
            seen[source.name] = i
        return self


def _loc(loc: tuple[int | str, ...], data: Any) -> str:
    """Render a pydantic location as `sources[1].command`, dropping union-tag segments."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        if isinstance(node, dict) and part not in node and part in {"stdio", "mcp", "openapi", "http"}:
            continue  # discriminated-union branch name, not a field
        if isinstance(node, dict) and part not in node and ("[" in part or part.startswith("function-")):
            continue
        out += f".{part}" if out else part
        node = node.get(part) if isinstance(node, dict) else None
    return out or "(top level)"


def _messages(exc: ValidationError, data: Any) -> list[str]:
    problems = []
    for err in exc.errors():
        where = _loc(tuple(err["loc"]), data)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field (check spelling; fields are camelCase)"
        elif err["type"] == "union_tag_invalid":
            msg = "unknown source type; expected one of stdio, mcp, openapi, http"
        problems.append(f"{where}: {msg}")
    return problems


def parse_config(data: Any, base_dir: Path | None = None) -> AdapterConfig:
    """Validate a decoded YAML document; relative file paths resolve against `base_dir`."""
    if not isinstance(data, dict):
        raise ConfigError(["(top level): expected a mapping with a `sources` list"])
    try:
        config = AdapterConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_messages(exc, data)) from None
    problems = []
    for i, source in enumerate(config.sources):
        problems += missing_env(source, f"sources[{i}]")
    if problems:
        raise ConfigError(problems)
    if base_dir is not None:
        config = _anchor_paths(config, base_dir)
    return config


def _anchor_paths(config: AdapterConfig, base_dir: Path) -> AdapterConfig:
    sources: list[Any] = []
    for source in config.sources:
        if isinstance(source, OpenApiSource) and not re.match(r"^https?://", source.spec):
            source = source.model_copy(update={"spec": str((base_dir / source.spec).resolve())})
        if isinstance(source, StdioSource) and source.cwd is not None:
            source = source.model_copy(update={"cwd": str((base_dir / source.cwd).resolve())})
        sources.append(source)
    return config.model_copy(update={"sources": sources})


def load_config(path: str | Path) -> AdapterConfig:
    """Read, parse and validate the YAML file at `path`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read config file {str(path)!r}: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    return parse_config(data, path.parent.resolve())
