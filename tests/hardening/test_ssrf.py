"""SSRF: `http` and `openapi` tools refuse loopback, link-local, metadata and private targets
unless the source sets allowPrivateNetwork, whatever the spelling of the address (IPv4-mapped
IPv6, decimal, hex, names resolving there), and never follow redirects. All traffic stays on
loopback: forbidden non-loopback addresses are checked without connecting anywhere."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from mcp_adapter import egress, httpcall

from tests.adapter.support import connect, start_adapter
from tests.support.loopback_http import send_json, serve_get


class Target:
    """A loopback HTTP server counting the requests that reach it; optionally redirecting."""

    def __init__(
        self,
        redirect_to: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        body: bytes = b'{"secret": "internal"}',
    ) -> None:
        self.hits = 0
        self.redirect_to = redirect_to
        self.body = body
        self.server = serve_get(self._answer, host, port)
        self.port = self.server.server_address[1]

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        self.hits += 1
        if self.redirect_to:
            handler.send_response(302)
            handler.send_header("Location", self.redirect_to)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        send_json(handler, self.body)


@pytest.fixture
def internal() -> Iterator[Target]:
    target = Target()
    yield target
    target.server.shutdown()


FORBIDDEN_LITERALS = [
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata (IPv4)
    "http://[fd00:ec2::254]/latest/meta-data/",  # cloud metadata (IPv6)
    "http://169.254.1.1/",  # link-local
    "http://[fe80::1]/",  # link-local IPv6
    "http://127.0.0.1/",
    "http://127.1.2.3/",
    "http://[::1]/",
    "http://[::ffff:169.254.169.254]/",  # IPv4-mapped IPv6
    "http://[::ffff:127.0.0.1]/",
    "http://0.0.0.0/",
    "http://2130706433/",  # 127.0.0.1 in decimal
    "http://0x7f000001/",  # 127.0.0.1 in hex
    "http://10.0.0.1/",
    "http://192.168.1.1/",
    "http://localhost/",  # a name resolving to loopback
    "http://100.64.0.1/",  # shared address space (CGNAT; pod ranges on some CNIs)
    "http://100.127.255.254/",
    "http://[::ffff:100.100.1.1]/",  # the same, IPv4-mapped
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
    "http://[64:ff9b:1::a00:1]/",  # local-use NAT64 of 10.0.0.1
    "http://[2002:7f00:1::1]/",  # 6to4 of 127.0.0.1
    "http://[2002:808:808::1]/",  # 6to4, even of a public IPv4 address: a relay connects on our behalf
    "http://198.18.0.1/",  # benchmarking
    "http://192.0.2.10/",  # documentation
    "http://[2001:db8::1]/",
    "http://224.0.0.1/",  # multicast
    "http://[ff0e::1]/",  # global-scope multicast
    "http://240.0.0.1/",  # reserved
]


@pytest.mark.parametrize("url", FORBIDDEN_LITERALS)
async def test_forbidden_addresses_are_refused(url: str) -> None:
    with pytest.raises(httpcall.BlockedAddress, match="allowPrivateNetwork"):
        await httpcall.check_public(url)


async def test_names_resolving_to_forbidden_addresses_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # Stand-in resolver (this machine has no DNS to point at such addresses): names that resolve
    # to metadata, link-local or a mix of public and private addresses are refused.
    answers = {
        "metadata.attacker.test": ["169.254.169.254"],
        "v6meta.attacker.test": ["fd00:ec2::254"],
        "mixed.attacker.test": ["93.184.216.34", "10.1.2.3"],
        "public.example.test": ["93.184.216.34"],
    }

    async def resolver(host: str, port: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        return [(None, None, None, "", (addr, 0)) for addr in answers[host]]

    monkeypatch.setattr(egress.anyio, "getaddrinfo", resolver)
    for host in ("metadata.attacker.test", "v6meta.attacker.test", "mixed.attacker.test"):
        with pytest.raises(httpcall.BlockedAddress, match="non-public address"):
            await httpcall.check_public(f"https://{host}/x")
    await httpcall.check_public("https://public.example.test/x")  # a public address passes


def test_overrides_still_allow_non_public_ranges() -> None:
    """`allowPrivateNetwork` allows every range; `allowedNetworks` exactly the listed ones."""
    for addr in ("100.64.3.4", "64:ff9b::a00:1", "2002:a00:1::1", "10.0.0.1", "::1"):
        assert not egress.AddressPolicy().allows(addr)
        assert egress.AddressPolicy.of(True).allows(addr)
    listed = egress.AddressPolicy.of(False, ["100.64.0.0/10", "64:ff9b::/96"])
    assert listed.allows("100.64.3.4") and listed.allows("::ffff:100.64.3.4") and listed.allows("64:ff9b::a00:1")
    assert not listed.allows("2002:a00:1::1") and not listed.allows("10.0.0.1")
    assert egress.AddressPolicy().allows("93.184.216.34") and egress.AddressPolicy().allows("2606:4700::1111")


def http_source(name: str, base_url: str, **extra: Any) -> dict[str, Any]:
    tool = {"name": "fetch", "method": "GET", "url": "/data"}
    return {"name": name, "type": "http", "baseUrl": base_url, "tools": [tool], "prefixPolicy": "always", **extra}


async def test_tools_never_reach_internal_services(spawn: Any, tmp_path: Path, internal: Target) -> None:
    redirector = Target(redirect_to=f"http://127.0.0.1:{internal.port}/data")
    try:
        doc = tmp_path / "internal-openapi.json"
        doc.write_text(
            '{"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, '
            f'"servers": [{{"url": "http://localhost:{internal.port}"}}], '
            '"paths": {"/data": {"get": {"operationId": "getData", "responses": {"200": {"description": "ok"}}}}}}'
        )
        sources = [
            http_source("byname", f"http://localhost:{internal.port}"),
            http_source("mapped", f"http://[::ffff:127.0.0.1]:{internal.port}"),
            http_source("decimal", f"http://2130706433:{internal.port}"),
            {"name": "spec", "type": "openapi", "spec": str(doc), "prefixPolicy": "always"},
            # Allowed to reach the redirector, which points at the internal service: not followed.
            http_source("hop", f"http://127.0.0.1:{redirector.port}", allowPrivateNetwork=True),
        ]
        adapter = start_adapter(spawn, tmp_path, sources)
        async with connect(adapter.mcp_url, "legacy") as client:
            for tool in ("byname__fetch", "mapped__fetch", "decimal__fetch", "spec__getData"):
                result = await client.call_tool(tool, {})
                assert result.is_error, tool
                assert "allowPrivateNetwork" in result.content[0].text, result.content  # type: ignore[union-attr]
            hop = await client.call_tool("hop__fetch", {})
            assert hop.is_error and "HTTP 302" in hop.content[0].text  # type: ignore[union-attr]
        assert redirector.hits == 1
        assert internal.hits == 0  # nothing ever reached the internal service
        assert "secret" not in adapter.process.log_text()
    finally:
        redirector.server.shutdown()


async def test_connection_goes_to_the_address_that_was_checked(
    monkeypatch: pytest.MonkeyPatch, internal: Target
) -> None:
    """DNS rebinding: the name is resolved once per connection and the connection goes to the checked address."""
    # A permitted service on 127.0.0.2 (listed in allowedNetworks) and a forbidden one on
    # 127.0.0.1, on the same port: only the address decides which one a request reaches.
    allowed = Target(host="127.0.0.2", port=internal.port, body=b'{"service": "allowed"}')
    lookups: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def rebinding_resolver(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        """Stand-in resolver (this machine has no DNS server to misbehave): a hostile DNS server that
        answers the permitted address to the first lookup of a name and the internal one afterwards."""
        name = host.decode() if isinstance(host, bytes) else host
        if name != "rebind.attacker.test":
            return real_getaddrinfo(host, port, *args, **kwargs)
        lookups.append(name)
        addr = "127.0.0.2" if len(lookups) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (addr, port or 0))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_resolver)

    def rebind_executor() -> httpcall.HttpExecutor:
        """A fresh executor (so a fresh connection pool) allowed only 127.0.0.2."""
        return httpcall.HttpExecutor(
            "rebind",
            auth=None,
            headers={},
            allow_private=False,
            timeout=10,
            max_excerpt=200,
            allowed_networks=["127.0.0.2/32"],
        )

    executor = rebind_executor()
    try:
        result = await executor.execute("GET", f"http://rebind.attacker.test:{internal.port}/data")
        assert not result.is_error, result.content
        assert result.structured_content == {"service": "allowed"}
        assert allowed.hits == 1 and internal.hits == 0
        assert lookups == ["rebind.attacker.test"]  # one lookup: the check's answer is the one used
        # A new connection resolves again and sees the internal answer: refused, never connected.
        await executor.close()
        executor = rebind_executor()
        refused = await executor.execute("GET", f"http://rebind.attacker.test:{internal.port}/data")
        assert refused.is_error and "non-public address 127.0.0.1" in refused.content[0].text  # type: ignore[union-attr]
        assert internal.hits == 0
    finally:
        await executor.close()
        allowed.server.shutdown()
