"""The adapter's egress guard (egress.py) in process: which addresses are public, what a source's
allowances open, resolution checks every address, and connections go only to checked addresses
(mutation-tested; real loopback sockets, no network beyond them)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpcore
import pytest
from mcp_adapter import egress
from mcp_adapter.egress import (
    AddressPolicy,
    BlockedAddress,
    CheckedBackend,
    CheckedTransport,
    guarded_client,
    is_public,
    resolve_checked,
)


@pytest.mark.parametrize(
    "addr",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "224.0.0.1",
        "::1",
        "fe80::1%eth0",
        "::ffff:127.0.0.1",
        "64:ff9b::a00:1",
        "2002:a00:1::",
        "0.0.0.0",
    ],
)
def test_non_public_addresses(addr: str) -> None:
    assert not is_public(addr)
    assert not AddressPolicy().allows(addr)
    assert AddressPolicy(allow_private=True).allows(addr)


@pytest.mark.parametrize("addr", ["8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "1.1.1.1"])
def test_public_addresses(addr: str) -> None:
    assert is_public(addr) and AddressPolicy().allows(addr)


def test_allowed_networks_open_only_their_addresses() -> None:
    policy = AddressPolicy.of(False, ["10.0.12.0/24", "fd00::1/64"])
    assert policy.allows("10.0.12.7") and policy.allows("::ffff:10.0.12.7")
    assert not policy.allows("10.0.13.1") and not policy.allows("127.0.0.1")
    assert policy.allows("fd00::2") and not policy.allows("fd01::1")
    assert AddressPolicy.of(True).allow_private and AddressPolicy.of(False).allowed_networks == ()


async def test_resolution_checks_every_address(monkeypatch: pytest.MonkeyPatch) -> None:
    assert await resolve_checked("127.0.0.1", AddressPolicy(allow_private=True)) == ["127.0.0.1"]
    with pytest.raises(BlockedAddress) as blocked:
        await resolve_checked("127.0.0.1", AddressPolicy())
    assert "127.0.0.1 resolves to the non-public address 127.0.0.1" in str(blocked.value)
    assert "allowPrivateNetwork: true" in str(blocked.value)

    async def answers(*found: str) -> Any:
        async def getaddrinfo(host: str, port: Any, **kwargs: Any) -> list[Any]:
            if not found:
                raise OSError("no such name")
            return [(0, 0, 0, "", (addr, 0)) for addr in found]

        return getaddrinfo

    # No DNS leaves the machine: the resolver is replaced by canned answers.
    monkeypatch.setattr(egress.anyio, "getaddrinfo", await answers())
    with pytest.raises(BlockedAddress, match=r"cannot resolve host 'gone\.example': no such name"):
        await resolve_checked("gone.example", AddressPolicy())
    monkeypatch.setattr(egress.anyio, "getaddrinfo", await answers("8.8.8.8", "8.8.8.8", "1.1.1.1"))
    assert await resolve_checked("two.example", AddressPolicy()) == ["8.8.8.8", "1.1.1.1"]
    monkeypatch.setattr(egress.anyio, "getaddrinfo", await answers("8.8.8.8", "10.0.0.1"))
    with pytest.raises(BlockedAddress, match=r"non-public address 10\.0\.0\.1"):
        await resolve_checked("mixed.example", AddressPolicy())
    monkeypatch.setattr(egress.anyio, "getaddrinfo", lambda *a, **k: _empty())
    with pytest.raises(BlockedAddress, match="resolves to no address"):
        await resolve_checked("empty.example", AddressPolicy())


async def _empty() -> list[Any]:
    return []


class Recorder(httpcore.AsyncNetworkBackend):
    """Stands in for the socket layer: records where connections go, refuses the listed addresses."""

    def __init__(self, refuse: Iterable[str] = ()) -> None:
        self.targets: list[tuple[str, int]] = []
        self.refuse = set(refuse)
        self.slept: list[float] = []

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        self.targets.append((host, port))
        if host in self.refuse:
            raise httpcore.ConnectError(f"refused {host}")
        return "stream"  # type: ignore[return-value]

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


async def test_the_backend_connects_to_the_checked_address_only() -> None:
    inner = Recorder()
    backend = CheckedBackend(AddressPolicy.of(False, ["127.0.0.0/8"]), inner)
    assert await backend.connect_tcp("localhost", 8080, timeout=5) == "stream"
    assert inner.targets and all(host == "127.0.0.1" or host == "::1" for host, _ in inner.targets)
    assert {port for _, port in inner.targets} == {8080}
    with pytest.raises(BlockedAddress):
        await CheckedBackend(AddressPolicy(), inner).connect_tcp("127.0.0.1", 80)
    with pytest.raises(BlockedAddress, match="unix sockets"):
        await backend.connect_unix_socket("/tmp/x.sock")
    await backend.sleep(0.5)
    assert inner.slept == [0.5]
    assert isinstance(CheckedBackend(AddressPolicy()).inner, httpcore.AnyIOBackend)


async def test_a_failed_connection_raises_the_last_failure() -> None:
    inner = Recorder(refuse={"127.0.0.1"})
    with pytest.raises(httpcore.ConnectError, match=r"refused 127\.0\.0\.1"):
        await CheckedBackend(AddressPolicy(allow_private=True), inner).connect_tcp("127.0.0.1", 1)


async def test_the_guarded_client_refuses_loopback_and_follows_no_redirects() -> None:
    client = guarded_client(AddressPolicy(), 5)
    assert client.follow_redirects is False and client.timeout.connect == 5
    assert isinstance(client._transport, CheckedTransport)
    async with client:
        with pytest.raises(BlockedAddress):
            await client.get("http://127.0.0.1:9/")
    open_client = guarded_client(AddressPolicy(allow_private=True), 5)
    assert not isinstance(open_client._transport, CheckedTransport)
    await open_client.aclose()
    pool = CheckedTransport(AddressPolicy())._pool
    assert isinstance(pool._network_backend, CheckedBackend)
    assert (pool._max_connections, pool._max_keepalive_connections, pool._keepalive_expiry) == (100, 20, 5.0)
