"""Outbound connections for `openapi` and `http` tools: resolve once, check, connect to what was checked.

SSRF guard: a tool call must not become a way to reach the adapter's own
network. A target whose name resolves to an address that is not globally
routable unicast (`ipaddress.is_global`: loopback, link-local including cloud
metadata 169.254.169.254, private, shared/CGNAT 100.64.0.0/10, NAT64
64:ff9b::/96, 6to4 2002::/16, multicast, ...) is refused unless the source
allows it (`allowPrivateNetwork: true`, or the address lies in one of its
`allowedNetworks`).

DNS rebinding: checking a name and then letting the HTTP client resolve it
again leaves a gap in which a hostile DNS server answers a public address to
the check and an internal one to the connection. `CheckedBackend` is the
httpcore network backend of the guarded client: every new connection resolves
the name exactly once, checks every address, and connects to a checked
address. Only the TCP target is pinned; httpcore still sends the original name
in the Host header and uses it for TLS SNI and certificate verification.

A guarded client ignores proxy environment variables (a proxy would resolve
the name itself, out of the check's reach).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import anyio
import httpcore
import httpx

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedAddress(Exception):
    """The target is not allowed (or cannot be resolved); the message says how to allow it."""


def _unmapped(addr: str) -> IpAddress:
    ip = ipaddress.ip_address(addr.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


TRANSLATED_NETWORKS: tuple[IpNetwork, ...] = tuple(
    ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48", "2002::/16")
)
"""NAT64 and 6to4 prefixes: IANA marks them globally reachable, but each embeds an IPv4 address
(possibly an internal one) that a translator or relay on the path connects to."""


def is_public(addr: str) -> bool:
    """Globally routable unicast only, after unmapping IPv4-mapped IPv6.

    `is_global` (the IANA special-purpose registries) rather than a list of exclusions: shared
    address space 100.64.0.0/10 (CGNAT, the pod range of some CNIs), benchmarking, documentation
    and other non-global ranges are neither `is_private` nor `is_reserved`. Translated IPv6
    prefixes (`TRANSLATED_NETWORKS`) count as non-public too.
    """
    ip = _unmapped(addr)
    if not ip.is_global or ip.is_multicast:
        return False
    return not (ip.version == 6 and any(ip in net for net in TRANSLATED_NETWORKS))


@dataclass(frozen=True)
class AddressPolicy:
    """Which resolved addresses outbound tool requests may connect to."""

    allow_private: bool = False
    allowed_networks: tuple[IpNetwork, ...] = ()

    @classmethod
    def of(cls, allow_private: bool, networks: Iterable[str] = ()) -> AddressPolicy:
        return cls(allow_private, tuple(ipaddress.ip_network(n, strict=False) for n in networks))

    def allows(self, addr: str) -> bool:
        if self.allow_private or is_public(addr):
            return True
        ip = _unmapped(addr)
        return any(ip.version == net.version and ip in net for net in self.allowed_networks)


async def resolve_checked(host: str, policy: AddressPolicy) -> list[str]:
    """Every address `host` resolves to, in order; `BlockedAddress` unless the policy allows all of them.

    All, not any: a name answering one public and one internal address must not be usable to
    reach the internal one on a later attempt.
    """
    try:
        infos = await anyio.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise BlockedAddress(f"cannot resolve host {host!r}: {exc}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise BlockedAddress(f"host {host!r} resolves to no address")
    for addr in addresses:
        if not policy.allows(addr):
            raise BlockedAddress(
                f"{host} resolves to the non-public address {addr}; set allowPrivateNetwork: true on the source "
                "(or list the address's network in allowedNetworks) to call private, loopback or link-local services"
            )
    return addresses


class CheckedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses `policy` allows, resolving each target name once per connection."""

    def __init__(self, policy: AddressPolicy, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.policy = policy
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                addresses = await resolve_checked(host, self.policy)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host!r} timed out") from None
        failure: Exception | None = None
        for addr in addresses:  # the checked addresses, never a fresh lookup
            try:
                return await self.inner.connect_tcp(addr, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress("unix sockets are not reachable from tools")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class CheckedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, its connection pool built on a `CheckedBackend`."""

    def __init__(self, policy: AddressPolicy) -> None:
        super().__init__()
        # AsyncHTTPTransport takes no network backend; the pool is the one piece replaced (same defaults).
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=CheckedBackend(policy),
        )


def guarded_client(policy: AddressPolicy, timeout: float) -> httpx.AsyncClient:
    """An HTTP client for tool calls: redirects not followed; guarded unless the policy allows everything."""
    transport = None if policy.allow_private else CheckedTransport(policy)
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False, transport=transport)
