"""Routing-config models of connections: an upstream's OAuth server, the gateway's user sign-in."""

from __future__ import annotations

import logging
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

log = logging.getLogger("mcp_gateway.connections")

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Released in the README and examples/routing-connections.yaml before the names were aligned with
# tokenExchange's; still read, with a warning.
_DEPRECATED = {"clientSecretFromEnv": "clientSecretEnv", "client_secret_from_env": "client_secret_env"}


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class SecretKeyRef(_Model):
    """One key of a Kubernetes Secret (the gateway reads it through the API; its Role must allow `get`)."""

    namespace: str
    name: str = Field(min_length=1, max_length=253)
    key: str = Field(min_length=1, max_length=253)

    @field_validator("namespace")
    @classmethod
    def _label(cls, value: str) -> str:
        if len(value) > 63 or not _LABEL.match(value):
            raise ValueError(f"{value!r} must be a DNS label: lowercase letters, digits and '-', at most 63 characters")
        return value


class ClientSecretSource(_Model):
    """Where the gateway reads a client secret: a file (a mounted Secret), an environment variable, or a
    Kubernetes Secret key. Read at each use, so a rotated Secret applies without a restart; never the
    value itself in the routing config. tokenExchange and connections name these alike."""

    client_secret_file: str | None = Field(default=None, max_length=1024)
    client_secret_env: str | None = Field(default=None, max_length=256)
    client_secret_ref: SecretKeyRef | None = None

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        old = [name for name in _DEPRECATED if name in data]
        if not old:
            return data
        new = _DEPRECATED[old[0]]
        log.warning("routing config: %s is deprecated, use %s (same meaning)", old[0], new)
        if new in data or len(old) > 1:
            raise ValueError(f"{old[0]} is the deprecated name of {new}: set only {new}")
        return {(new if k == old[0] else k): v for k, v in data.items()}

    def secret_sources(self) -> list[object]:
        return [s for s in (self.client_secret_file, self.client_secret_env, self.client_secret_ref) if s]


class ClientCredentials(ClientSecretSource):
    """An OAuth client registered at a provider; no secret source means a public client."""

    client_id: str = Field(min_length=1, max_length=256)

    @model_validator(mode="after")
    def _one_secret(self) -> ClientCredentials:
        if len(self.secret_sources()) > 1:
            raise ValueError(
                f"client {self.client_id!r}: set at most one of clientSecretFile, clientSecretEnv and clientSecretRef"
            )
        return self


class OAuthConnection(ClientCredentials):
    """An upstream's third-party authorization server: each caller connects their own account to it.

    Either `issuer` (endpoints from its RFC 8414 / OpenID discovery document) or both endpoints.
    """

    issuer: str | None = None
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    revocation_endpoint: str | None = None
    scopes: list[str] = Field(default_factory=list, max_length=64)
    display_name: str | None = Field(default=None, max_length=128)

    @model_validator(mode="after")
    def _endpoints(self) -> OAuthConnection:
        explicit = self.authorization_endpoint and self.token_endpoint
        if not self.issuer and not explicit:
            raise ValueError("connection needs issuer (discovery) or both authorizationEndpoint and tokenEndpoint")
        for url in (self.issuer, self.authorization_endpoint, self.token_endpoint, self.revocation_endpoint):
            if url is not None and not url.startswith(("https://", "http://")):
                raise ValueError(f"connection endpoint {url!r} must be an http(s) URL")
        return self


class UserSignIn(ClientCredentials):
    """The gateway's client at the profiles' identity provider: who opens a connect link or the
    connections page signs in with it, so a link cannot connect someone else's account."""

    scopes: list[str] = Field(default_factory=lambda: ["openid"], max_length=64)


class ConnectionSettings(_Model):
    user_sign_in: UserSignIn | None = None
    # Links handed to callers stay valid this long.
    link_seconds: int = Field(default=900, ge=60, le=86400)
