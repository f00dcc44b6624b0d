"""ASGI guard in front of `/mcp`: Host/Origin validation and header-value trimming.

DNS rebinding: a browser page on any site can make a user's browser send
requests to a server on localhost. The guard accepts a request only when its
`Host` names this server (`allowedHosts`) and its `Origin`, when present,
is an allowed one (`allowedOrigins`). Defaults: bound to a loopback address,
only loopback host names (any port) are accepted; bound to anything else (a
pod listening on 0.0.0.0, reached through Service names the adapter cannot
know), `Host` is not checked unless `allowedHosts` is set. Browser origins are
limited to loopback ones unless `allowedOrigins` says otherwise; requests
without `Origin` (non-browser clients such as the gateway) always pass it.

Entries: `host` (any port), `host:port`, `*.example.com`, or `*`; origins
likewise: `http://localhost` (any port), `https://app.example.com:8443`, `*`.

Header values: RFC 9110 says a recipient trims optional whitespace around a
field value. uvicorn's default httptools parser does not (h11 does), so
`Mcp-Name: "  tool  "` would not match the body's `tool`. Rather than switch
the whole server to the slower pure-Python h11 parser, the guard trims
values itself, and only rebuilds the header list when some value actually
carries such whitespace (a byte check per header, no copy otherwise).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from mcp_common.jsonrpc_errors import INVALID_REQUEST, error_body
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
LOOPBACK_ORIGINS = tuple(f"{scheme}://{host}" for scheme in ("http", "https") for host in LOOPBACK_HOSTS)
_OWS = (32, 9)  # space, horizontal tab


def is_loopback(bind_host: str) -> bool:
    if bind_host == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind_host.strip("[]")).is_loopback
    except ValueError:
        return False


def _split_port(value: str) -> tuple[str, str | None]:
    """`host[:port]` (IPv6 in brackets) -> (host, port or None)."""
    if value.startswith("["):
        end = value.find("]")
        rest = value[end + 1 :]
        return value[: end + 1], rest[1:] if rest.startswith(":") else None
    host, sep, port = value.rpartition(":")
    return (host, port) if sep and port.isdigit() else (value, None)


def _matches(value: str, patterns: Iterable[str]) -> bool:
    host, port = _split_port(value.lower())
    for pattern in patterns:
        if pattern == "*":
            return True
        p_host, p_port = _split_port(pattern.lower())
        if p_port is not None and p_port != port:
            continue
        if p_host == host or (p_host.startswith("*.") and host.endswith(p_host[1:])):
            return True
    return False


def _origin_matches(origin: str, patterns: Iterable[str]) -> bool:
    scheme, sep, rest = origin.partition("://")
    if not sep:
        return False
    for pattern in patterns:
        if pattern == "*":
            return True
        p_scheme, p_sep, p_rest = pattern.partition("://")
        if p_sep and p_scheme.lower() == scheme.lower() and _matches(rest, [p_rest]):
            return True
    return False


@dataclass(frozen=True)
class GuardSettings:
    allowed_hosts: tuple[str, ...] | None  # None: Host is not checked
    allowed_origins: tuple[str, ...]

    @classmethod
    def for_bind(cls, bind_host: str, hosts: list[str], origins: list[str]) -> GuardSettings:
        if hosts:
            allowed_hosts: tuple[str, ...] | None = tuple(hosts)
        else:
            allowed_hosts = LOOPBACK_HOSTS if is_loopback(bind_host) else None
        return cls(allowed_hosts, tuple(origins) or LOOPBACK_ORIGINS)


class HttpGuard:
    def __init__(self, app: ASGIApp, settings: GuardSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if any(v and (v[0] in _OWS or v[-1] in _OWS) for _, v in headers):
            scope = {**scope, "headers": [(k, v.strip(b" \t")) for k, v in headers]}
            headers = scope["headers"]
        problem = self._check(headers)
        if problem is None:
            await self.app(scope, receive, send)
            return
        status, message = problem
        body = error_body(INVALID_REQUEST, message)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _check(self, headers: list[tuple[bytes, bytes]]) -> tuple[int, str] | None:
        host = origin = None
        for key, value in headers:
            if key == b"host":
                host = value.decode("latin-1")
            elif key == b"origin":
                origin = value.decode("latin-1")
        allowed_hosts = self.settings.allowed_hosts
        if allowed_hosts is not None and not (host and _matches(host, allowed_hosts)):
            return 421, f"Host {host!r} is not served here (DNS rebinding protection); add it to server.allowedHosts"
        if origin and origin != "null" and not _origin_matches(origin, self.settings.allowed_origins):
            return 403, f"Origin {origin!r} is not allowed; add it to server.allowedOrigins"
        if origin == "null":
            return 403, "Origin 'null' is not allowed"
        return None
