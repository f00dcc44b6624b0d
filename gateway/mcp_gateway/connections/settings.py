"""Routing-config models of connections: an upstream's OAuth server, the gateway's user sign-in."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class ClientCredentials(_Model):
    """An OAuth client registered at a provider; the secret from the environment or a mounted Secret file."""

    client_id: str = Field(min_length=1, max_length=256)
    client_secret_from_env: str | None = Field(default=None, max_length=256)
    client_secret_file: str | None = Field(default=None, max_length=1024)

    @model_validator(mode="after")
    def _one_secret(self) -> ClientCredentials:
        if self.client_secret_from_env and self.client_secret_file:
            raise ValueError(f"client {self.client_id!r}: set clientSecretFromEnv or clientSecretFile, not both")
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
