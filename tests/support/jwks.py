"""An OIDC issuer for tests: RSA signing keys, a loopback server publishing their JWKS, and tokens."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.loopback_http import send_json, serve_get

ISSUER = "https://issuer.test"
AUDIENCE = "mcp-gateway"


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def oidc_settings(jwks_url: str, **extra: Any) -> dict[str, Any]:
    """A profile's `auth.oidc` block trusting RS256 tokens of ISSUER for AUDIENCE, keys from `jwks_url`."""
    return {"issuer": ISSUER, "audience": AUDIENCE, "jwksUrl": jwks_url, "algorithms": ["RS256"], **extra}


class Issuer:
    """Signing keys plus a real HTTP server publishing their JWKS."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.published: list[str] = []
        self.fetches = 0
        # An issuer in trouble: `failing` answers every fetch with that HTTP status; `stalled`
        # (while cleared) accepts the request and answers nothing until it is set.
        self.failing: int | None = None
        self.stalled: threading.Event | None = None
        self.server = serve_get(self._serve_jwks)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"

    def _serve_jwks(self, handler: BaseHTTPRequestHandler) -> None:
        self.fetches += 1
        if self.stalled is not None:
            self.stalled.wait()
            return
        if self.failing is not None:
            handler.send_error(self.failing)
            return
        send_json(handler, json.dumps(self.jwks()).encode())

    def add_key(self, kid: str) -> None:
        self.keys[kid] = new_rsa_key()
        self.published.append(kid)

    def jwks(self) -> dict[str, Any]:
        out = []
        for kid in self.published:
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key()))
            out.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
        return {"keys": out}

    def token(self, kid: str, **overrides: Any) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300, "scope": "mcp:tools"}
        claims.update(overrides)
        return jwt.encode(claims, self.keys[kid], algorithm="RS256", headers={"kid": kid})

    def public_pem(self, kid: str) -> bytes:
        return (
            self.keys[kid]
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )


@contextlib.contextmanager
def running_issuer(*kids: str) -> Iterator[Issuer]:
    """An issuer publishing `kids`, its server shut down on exit."""
    issuer = Issuer()
    for kid in kids:
        issuer.add_key(kid)
    try:
        yield issuer
    finally:
        if issuer.stalled is not None:
            issuer.stalled.set()  # releases a stalled answer's thread
        issuer.server.shutdown()
        issuer.server.server_close()  # the port refuses connections from now on
