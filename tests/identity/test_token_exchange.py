"""Token exchange (RFC 8693) against the real provider: the upstream gets a token made for it.

Keycloak's standard token exchange (V2) is enabled for the realm's `mcp-gateway` client. The
upstream is an HTTP API (tests/servers/audience_api.py) that accepts only tokens for its own
audience `orders-api`, checked against the provider's JWKS, behind an adapter whose source
sends the token the gateway exchanged (`auth: {type: exchanged}`). The gateway reaches the
provider's token endpoint through a TCP proxy the tests can cut.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from mcp_gateway.config import TokenExchange
from mcp_gateway.token_exchange import ExchangeRefused, TokenExchanger
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.support import (
    MODERN,
    GatewayProc,
    Spawn,
    mcp_client,
    modern_call,
    modern_headers,
    profile,
    start_gateway,
    write_config,
)
from tests.support.keycloak import TEST_TIMEOUT_SECONDS, Keycloak
from tests.support.processes import ManagedProcess, free_port

pytestmark = [pytest.mark.late_tools, pytest.mark.timeout(TEST_TIMEOUT_SECONDS)]

GATEWAY_CLIENT = ("mcp-gateway", "mcp-gateway-exchange-secret")  # as in tests/data/keycloak/mcp-realm.json
AUDIENCE = "orders-api"
SCOPES = ["orders:write"]


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


@pytest.fixture(scope="module")
def api(spawn_module: Spawn, keycloak: Keycloak) -> str:
    port = free_port()
    cmd = [sys.executable, "-m", "tests.servers.audience_api", "--port", str(port)]
    cmd += ["--issuer", keycloak.issuer, "--audience", AUDIENCE]
    spawn_module(cmd, name="orders-api", ready_url=f"http://127.0.0.1:{port}/seen")
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def adapter(spawn_module: Spawn, api: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An adapter whose `orders` (HTTP) and `orders-mcp` (remote MCP) sources call the API with the token
    the gateway sends."""
    tool = {"name": "my_orders", "description": "the caller's orders", "method": "GET", "url": "/orders"}
    source = {"name": "orders", "type": "http", "baseUrl": api, "allowPrivateNetwork": True}
    source |= {"auth": {"type": "exchanged"}, "tools": [tool]}
    remote = {"name": "orders-mcp", "type": "mcp", "url": f"{api}/mcp", "auth": {"type": "exchanged"}}
    config = Path(tmp_path_factory.mktemp("adapter")) / "adapter.yaml"
    config.write_text(yaml.safe_dump({"sources": [source, remote]}))
    port = free_port()
    cmd = [sys.executable, "-m", "mcp_adapter.cli", "--config", str(config), "--port", str(port)]
    spawn_module(cmd, name="orders-adapter", ready_url=f"http://127.0.0.1:{port}/readyz", timeout=60)
    return f"http://127.0.0.1:{port}/mcp"


class ProviderLink:
    """The gateway's way to the token endpoint: an HTTP proxy (sending the provider's own Host, so
    it names itself as in the callers' tokens) that a test stops to play a provider that is down."""

    def __init__(self, spawn: Spawn, target: str) -> None:
        self.spawn, self.target, self.port = spawn, target, free_port()
        self.process: ManagedProcess | None = None

    def up(self) -> None:
        if self.process is None or not self.process.alive():
            cmd = [sys.executable, "-m", "tests.support.header_proxy", "--target", self.target]
            env = {"PROXY_HEADER": f"Host: {httpx.URL(self.target).netloc.decode()}"}
            ready = f"http://127.0.0.1:{self.port}/"
            self.process = self.spawn([*cmd, "--port", str(self.port)], name="provider-link", env=env, ready_url=ready)

    def down(self) -> None:
        if self.process is not None:
            self.process.stop(grace=5)


@pytest.fixture(scope="module")
def provider_link(spawn_module: Spawn, keycloak: Keycloak) -> ProviderLink:
    link = ProviderLink(spawn_module, keycloak.base)
    link.up()
    return link


@pytest.fixture(scope="module")
def gateway(
    spawn_module: Spawn,
    keycloak: Keycloak,
    api: str,
    adapter: str,
    feature_url: str,
    provider_link: ProviderLink,
    tmp_path_factory: pytest.TempPathFactory,
) -> GatewayProc:
    folder = Path(tmp_path_factory.mktemp("exchange"))
    secret = folder / "client-secret"
    secret.write_text(GATEWAY_CLIENT[1] + "\n")
    endpoint = keycloak.token_url.replace(keycloak.base, f"http://127.0.0.1:{provider_link.port}")
    exchange = {"tokenEndpoint": endpoint, "clientId": GATEWAY_CLIENT[0], "clientSecretFile": str(secret)}
    oidc = keycloak.oidc_settings(requiredScopes=["mcp:tools"], leewaySeconds=0)
    upstreams = [
        {
            "name": "orders",
            "url": adapter,
            "tokenExchange": exchange | {"audience": AUDIENCE, "scopes": ["orders:write"]},
        },
        # The API's MCP face, straight from the gateway.
        {"name": "direct", "url": f"{api}/mcp", "prefix": "always", "tokenExchange": exchange | {"audience": AUDIENCE}},
        # The provider refuses this audience to the gateway's client.
        {"name": "billing", "url": feature_url, "tokenExchange": exchange | {"audience": "billing-api"}},
    ]
    entry = profile("ex", "acme", [], auth={"methods": ["apiKey", "oidc"], "oidc": oidc}) | {"upstreams": upstreams}
    config = write_config(
        folder / "routing.yaml",
        {"gateway": {"allowPrivateJwks": True}, "tenants": [{"id": "acme"}], "profiles": [entry]},
    )
    return start_gateway(spawn_module, config, name="gw-exchange")


@pytest.fixture
def provider_up(provider_link: ProviderLink) -> Iterator[None]:
    provider_link.up()
    yield
    provider_link.up()


def exchanges(gateway: GatewayProc, upstream: str, outcome: str) -> float:
    """mcp_gateway_token_exchanges_total for one upstream and outcome, from the gateway's /metrics."""
    with gateway.admin() as admin:
        text = admin.get("/metrics").text
    wanted = {"tenant": "acme", "profile": "ex", "upstream": upstream, "outcome": outcome}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "mcp_gateway_token_exchanges_total" and sample.labels == wanted:
                return float(sample.value)
    return 0.0  # none counted yet


def seen(api: str) -> list[str]:
    return list(httpx.get(f"{api}/seen", timeout=10).json())


async def my_orders(gateway: GatewayProc, token: str, mode: str = "legacy") -> dict[str, Any]:
    async with mcp_client(gateway.url("ex"), {"Authorization": f"Bearer {token}"}, mode=mode) as client:
        result = await client.call_tool("my_orders", {})
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return dict(result.structured_content)


async def test_the_upstream_gets_a_token_for_its_audience_once_per_caller_token(
    gateway: GatewayProc, api: str, keycloak: Keycloak, provider_up: None
) -> None:
    alice = keycloak.access_token("alice")
    before, made = len(seen(api)), exchanges(gateway, "orders", "ok")
    # Several calls, both eras: one exchange, whose token the API accepts for its own audience.
    answers = [await my_orders(gateway, alice, mode) for mode in ("legacy", MODERN, MODERN, "legacy")]
    assert all(a == answers[0] for a in answers)
    assert answers[0]["preferred_username"] == "alice"
    assert answers[0]["aud"] == AUDIENCE and answers[0]["azp"] == GATEWAY_CLIENT[0]
    assert "orders:write" in answers[0]["scope"].split()  # the Upstream's scopes were asked for
    received = seen(api)[before:]
    assert len(received) == 4 and len(set(received)) == 1, "one exchanged token for all four calls"
    exchanged = received[0].removeprefix("Bearer ")
    assert exchanged != alice and alice not in " ".join(seen(api))  # the caller's own token never arrives
    assert claims_of(exchanged)["sub"] == claims_of(alice)["sub"]

    # Another caller gets a token of their own; so does the same person with a new token.
    assert (await my_orders(gateway, keycloak.access_token("bob")))["preferred_username"] == "bob"
    assert (await my_orders(gateway, keycloak.access_token("alice")))["preferred_username"] == "alice"
    assert len(set(seen(api)[before:])) == 3
    assert exchanges(gateway, "orders", "ok") == made + 3  # the gateway's count agrees


async def never_sample(ctx: Any, params: Any) -> Any:
    raise AssertionError("the upstream asked for sampling")


async def test_remote_mcp_servers_get_the_exchanged_token_directly_and_through_the_adapter(
    gateway: GatewayProc, api: str, keycloak: Keycloak, provider_up: None
) -> None:
    alice = keycloak.access_token("alice")
    before = len(httpx.get(f"{api}/calls", timeout=10).json())
    # A handshake client that can be asked things (sampling) takes the gateway's SDK path (these upstreams are
    # not told its era), the others its relays.
    for mode, options in (("legacy", {}), (MODERN, {}), ("legacy", {"sampling_callback": never_sample})):
        headers = {"Authorization": f"Bearer {alice}"}
        async with mcp_client(gateway.url("ex"), headers, mode=mode, **options) as client:
            names = [t.name for t in (await client.list_tools()).tools if t.name.endswith("open_orders")]
            assert len(names) == 2 and "direct__open_orders" in names  # the adapter's and the direct upstream's
            for name in names:
                result = await client.call_tool(name, {})
                assert not result.is_error and "2 open orders" in str(result.content), (name, result.content)
    accepted = httpx.get(f"{api}/calls", timeout=10).json()[before:]
    assert len(accepted) == 6
    assert all(c["preferred_username"] == "alice" and c["aud"] == AUDIENCE for c in accepted), accepted
    assert alice not in " ".join(seen(api))


async def test_refusals_are_clear_and_nothing_reaches_the_upstream(
    gateway: GatewayProc, api: str, keycloak: Keycloak, provider_up: None
) -> None:
    before = len(seen(api))
    refusals, no_token = exchanges(gateway, "billing", "refused"), exchanges(gateway, "orders", "no_token")
    headers = {"Authorization": f"Bearer {keycloak.access_token('alice')}"}
    # The provider will not exchange for an audience the gateway's client may not ask for.
    call = modern_headers("tools/call", "echo", **headers)
    answer = httpx.post(gateway.url("ex"), json=modern_call("echo", {"text": "hi"}), headers=call, timeout=30)
    assert answer.status_code == 200
    error = answer.json()["error"]
    assert error["code"] == -32003 and error["data"] == {"reason": "tokenExchange"}
    assert "billing-api" in error["message"] and "Requested audience not available" in error["message"]

    # An API key cannot be exchanged: the call is refused with the reason, not sent without a token.
    with gateway.admin() as admin:
        key = admin.post("/admin/v1/tenants/acme/keys", json={"name": "ci-bot"}).json()["key"]
    async with mcp_client(gateway.url("ex"), {"Authorization": f"Bearer {key}"}, mode=MODERN) as client:
        assert "my_orders" in {t.name for t in (await client.list_tools()).tools}  # the catalog is not personal
        with pytest.raises(Exception, match="needs an OAuth bearer token") as refused:
            await client.call_tool("my_orders", {})
    assert "API key cannot be exchanged" in str(refused.value)
    assert len(seen(api)) == before
    assert exchanges(gateway, "billing", "refused") == refusals + 1
    assert exchanges(gateway, "orders", "no_token") == no_token + 1


async def test_a_provider_that_is_down_gives_503_and_nothing_is_cached(
    gateway: GatewayProc, api: str, keycloak: Keycloak, provider_link: ProviderLink, provider_up: None
) -> None:
    token = keycloak.access_token("bob")
    provider_link.down()
    headers = modern_headers("tools/call", "my_orders", Authorization=f"Bearer {token}")
    answer = httpx.post(gateway.url("ex"), json=modern_call("my_orders", {}), headers=headers, timeout=30)
    assert answer.status_code == 503 and answer.headers["retry-after"] == "10"
    assert answer.json()["error"]["code"] == -32054
    assert "could not be reached" in answer.json()["error"]["message"]

    provider_link.up()  # back: the failure was not remembered
    answer = httpx.post(gateway.url("ex"), json=modern_call("my_orders", {}), headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"]["structuredContent"]["preferred_username"] == "bob"


async def test_a_token_is_kept_until_shortly_before_it_expires_and_shared_by_concurrent_calls(
    keycloak: Keycloak, tmp_path: Path
) -> None:
    """The exchanger on its own, with the provider found by discovery (its issuer) and a clock the test moves."""
    secret = tmp_path / "secret"
    secret.write_text(GATEWAY_CLIENT[1])
    exchange = {"issuer": keycloak.issuer, "clientId": GATEWAY_CLIENT[0], "clientSecretFile": str(secret)}
    settings = TokenExchange.model_validate(exchange | {"audience": AUDIENCE})
    now = [0.0]
    exchanger = TokenExchanger(lambda: True, clock=lambda: now[0])
    alice = keycloak.access_token("alice")
    tokens = await asyncio.gather(*(exchanger.token(settings, alice) for _ in range(5)))
    assert len(set(tokens)) == 1 and exchanger.exchanges == 1  # concurrent calls waited for one exchange
    lifetime = claims_of(tokens[0])["exp"] - claims_of(tokens[0])["iat"]
    now[0] = lifetime - 31  # refreshBeforeSeconds (30) before expiry: still served from the cache
    assert await exchanger.token(settings, alice) == tokens[0] and exchanger.exchanges == 1
    now[0] = lifetime - 29
    renewed = await exchanger.token(settings, alice)
    assert renewed != tokens[0] and exchanger.exchanges == 2

    # A refusal is not cached: the caller's next call asks again.
    with pytest.raises(ExchangeRefused, match="invalid_request"):
        await exchanger.token(settings, alice[:-8] + "AAAAAAAA")  # a signature the provider rejects
    secret.write_text("not-the-secret")  # a rotated file is read on the next exchange
    with pytest.raises(ExchangeRefused, match="unauthorized_client"):
        await exchanger.token(settings, keycloak.access_token("bob"))
    assert exchanger.exchanges == 4

    # The cache is bounded: past maxEntries the least recently used token goes first.
    secret.write_text(GATEWAY_CLIENT[1])
    small = TokenExchanger(lambda: True, max_entries=1)
    bob = keycloak.access_token("bob")
    first = await small.token(settings, alice)
    await small.token(settings, bob)
    assert await small.token(settings, bob) and small.exchanges == 2
    assert await small.token(settings, alice) != first and small.exchanges == 3
