"""The OAuth 2.1 client side: discovery, authorization code + PKCE (S256), refresh, revocation.

Errors are split by what the caller should do: `ProviderUnavailable` (network, 5xx, a malformed
answer: try again later, nothing changes) and `GrantRefused` (the provider said no, e.g.
`invalid_grant` for a revoked or expired refresh token: connect again).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx

TIMEOUT = httpx.Timeout(10.0)


class ProviderUnavailable(Exception):
    """The provider could not be reached or answered unusably; the message names which endpoint."""


class GrantRefused(Exception):
    """The provider refused the grant (its OAuth `error`, never a token, in the message)."""

    def __init__(self, error: str, description: str = "") -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error


class ClientSecretMissing(Exception):
    pass


@dataclass(frozen=True)
class Endpoints:
    authorization: str
    token: str
    revocation: str | None = None


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    expires_at: float  # time.monotonic() deadline
    refresh_token: str | None
    scope: str
    id_token: str | None = None


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge) per RFC 7636."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class Client:
    """A client id with its secret as read for this request (Connections.client); None: a public client."""

    client_id: str
    secret: str | None = None


def authorization_url(
    endpoints: Endpoints, client_id: str, redirect_uri: str, scopes: list[str], state: str, challenge: str
) -> str:
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if scopes:
        query["scope"] = " ".join(scopes)
    separator = "&" if "?" in endpoints.authorization else "?"
    return f"{endpoints.authorization}{separator}{urlencode(query, quote_via=quote)}"


async def discover(http: httpx.AsyncClient, issuer: str) -> Endpoints:
    """RFC 8414 metadata, falling back to OpenID Connect discovery."""
    base = issuer.rstrip("/")
    for url in (f"{base}/.well-known/oauth-authorization-server", f"{base}/.well-known/openid-configuration"):
        try:
            response = await http.get(url, timeout=TIMEOUT)
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"cannot reach {url}: {type(exc).__name__}") from None
        if response.status_code == 404:
            continue
        document = _json(response, url)
        authorization, token = document.get("authorization_endpoint"), document.get("token_endpoint")
        if not isinstance(authorization, str) or not isinstance(token, str):
            raise ProviderUnavailable(f"{url} names no authorization_endpoint/token_endpoint")
        revocation = document.get("revocation_endpoint")
        return Endpoints(authorization, token, revocation if isinstance(revocation, str) else None)
    raise ProviderUnavailable(f"{base} publishes no authorization server metadata")


async def exchange_code(
    http: httpx.AsyncClient, token_url: str, creds: Client, code: str, verifier: str, redirect_uri: str
) -> TokenSet:
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier, "redirect_uri": redirect_uri}
    return await _token_request(http, token_url, creds, form)


async def refresh(http: httpx.AsyncClient, token_url: str, creds: Client, refresh_token: str) -> TokenSet:
    return await _token_request(http, token_url, creds, {"grant_type": "refresh_token", "refresh_token": refresh_token})


async def revoke(http: httpx.AsyncClient, url: str, creds: Client, token: str) -> None:
    """RFC 7009, best effort: the stored row is deleted whatever the provider answers."""
    form = {"token": token, "token_type_hint": "refresh_token"}
    await http.post(url, data=form | _client_form(creds), headers=_client_headers(creds), timeout=TIMEOUT)


def _client_form(creds: Client) -> dict[str, str]:
    return {} if creds.secret else {"client_id": creds.client_id}


def _client_headers(creds: Client) -> dict[str, str]:
    secret = creds.secret
    if not secret:
        return {}
    # client_secret_basic: both parts form-urlencoded first (RFC 6749 §2.3.1).
    pair = f"{quote(creds.client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"Authorization": f"Basic {base64.b64encode(pair).decode()}"}


async def _token_request(http: httpx.AsyncClient, url: str, creds: Client, form: dict[str, str]) -> TokenSet:
    headers = _client_headers(creds) | {"Accept": "application/json"}
    try:
        response = await http.post(url, data=form | _client_form(creds), headers=headers, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        raise ProviderUnavailable(f"cannot reach the token endpoint {url}: {type(exc).__name__}") from None
    if response.status_code in (400, 401):
        body = _json(response, url, strict=False)
        error = body.get("error")
        if isinstance(error, str):
            description = body.get("error_description")
            raise GrantRefused(error[:64], description[:200] if isinstance(description, str) else "")
    if response.status_code != 200:
        raise ProviderUnavailable(f"the token endpoint {url} answered HTTP {response.status_code}")
    body = _json(response, url)
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        raise ProviderUnavailable(f"the token endpoint {url} returned no access_token")
    expires_in = body.get("expires_in")
    lifetime = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else 300.0
    refresh_token = body.get("refresh_token")
    id_token = body.get("id_token")
    return TokenSet(
        access,
        time.monotonic() + lifetime,
        refresh_token if isinstance(refresh_token, str) and refresh_token else None,
        str(body.get("scope") or form.get("scope") or ""),
        id_token if isinstance(id_token, str) else None,
    )


def _json(response: httpx.Response, url: str, *, strict: bool = True) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    if strict:
        raise ProviderUnavailable(f"{url} answered HTTP {response.status_code} without a JSON object")
    return {}
