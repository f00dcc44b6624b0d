"""The cost per call of a cached token exchange (RFC 8693, an Upstream's `tokenExchange`).

Two views, side by side in one run. End to end: two OIDC profiles on one gateway differ only
in `tokenExchange` on their upstream (`oidc`, `exchanged`; same upstream, same caller token,
a stand-in token endpoint that counts its exchanges: one for the whole run); the added p50 at
concurrency 1, the added time per call at concurrency 16 and the added gateway CPU per call.
In process: what the front runs per call once the token is cached (find the call's upstream,
hash the caller's token, look it up) plus the upstream request's header hook, timed call by
call, p50 and p99.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import httpx
from mcp_gateway.auth import Principal
from mcp_gateway.config import Profile
from mcp_gateway.token_exchange import TokenExchanger, bearer_for, exchange_for_request, exchanged_token
from starlette.datastructures import Headers

from bench.auth import AUDIENCE, ISSUER, _keypair, _token
from bench.overhead import echo_adapter_config, measure
from bench.policy import _percentiles
from bench.stack import Stack

LOOPS = 5000
SECRET_ENV = "BENCH_EXCHANGE_SECRET"  # noqa: S105 (the variable's name)


def _routing(adapter_url: str, jwks_url: str, token_url: str) -> dict[str, Any]:
    oidc = {"issuer": ISSUER, "audience": AUDIENCE, "jwksUrl": jwks_url, "algorithms": ["RS256"]}
    exchange = {"tokenEndpoint": token_url, "clientId": "bench-gateway", "clientSecretEnv": SECRET_ENV}
    exchange["audience"] = "bench-api"
    plain = {"name": "echo", "url": adapter_url, "prefix": "never"}
    auth = {"mode": "oidc", "oidc": oidc}
    return {
        "gateway": {"allowPrivateJwks": True},  # the JWKS and token endpoints are on loopback
        "tenants": [{"id": "bench"}],
        "profiles": [
            {"id": "oidc", "tenant": "bench", "upstreams": [plain], "auth": auth},
            {"id": "exchanged", "tenant": "bench", "upstreams": [plain | {"tokenExchange": exchange}], "auth": auth},
        ],
    }


async def in_process(routing: dict[str, Any], token: str) -> dict[str, Any]:
    """Microseconds per call of the cached path: exchange_for_request() plus the header hook."""
    profile = Profile.model_validate(routing["profiles"][1])
    exchanger = TokenExchanger(lambda: True)
    settings = profile.upstreams[0].token_exchange
    assert settings is not None
    key = await exchanger.token(settings, token)  # the one exchange (at the stand-in endpoint); then cached
    headers = Headers({"authorization": f"Bearer {token}"})
    principal = Principal("oidc", "bench", "sub:bench-user")
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {}}}
    samples = []
    for i in range(LOOPS + 200):
        began = time.perf_counter()
        exchanged = await exchange_for_request(exchanger, profile, principal, headers, message, lambda k, n: "echo")
        reset = exchanged_token.set(exchanged)
        sent = bearer_for("echo")
        exchanged_token.reset(reset)
        elapsed = time.perf_counter() - began
        assert sent == [("authorization", f"Bearer {key}")]
        if i >= 200:
            samples.append(elapsed * 1e6)
    return {"cached_call": _percentiles(samples), "exchanges": exchanger.exchanges}


def run(seconds: int, repeat: int = 3) -> dict[str, Any]:
    private, jwks = _keypair()
    token = _token(private)
    with Stack("token-exchange") as stack:
        jwks_file = stack.workdir / "jwks.json"
        jwks_file.write_bytes(jwks)
        jwks_base, _ = stack.python_module("jwks", "bench.jwks_server", str(jwks_file), ready_path="/jwks.json")
        token_base, _ = stack.python_module("token-endpoint", "bench.exchange_server", ready_path="/count")
        echo_base, _ = stack.python_module("echo", "bench.echo_server", ready_path="/mcp")
        adapter_url, _ = stack.adapter("echo", echo_adapter_config(f"{echo_base}/mcp"))
        routing = _routing(adapter_url, f"{jwks_base}/jwks.json", f"{token_base}/token")
        gateway = stack.gateway("token-exchange", routing, env={SECRET_ENV: "bench-client-secret"})
        headers = {"Authorization": f"Bearer {token}"}
        pids = {"gateway": gateway.pid}
        points = {pid: measure(gateway.url(pid), headers, seconds, repeat, (1, 16), pids) for pid in routing_ids()}
        exchanges = httpx.get(f"{token_base}/count", timeout=10).json()["exchanges"]
        os.environ[SECRET_ENV] = "bench-client-secret"
        inside = asyncio.run(in_process(routing, token))
    base, exchanged = points["oidc"], points["exchanged"]
    added = {
        "added_p50_ms_c1": round(exchanged[0]["p50_ms"] - base[0]["p50_ms"], 3),
        "added_ms_per_call_c16": round(1000 / exchanged[1]["calls_per_s"] - 1000 / base[1]["calls_per_s"], 3),
        "added_gateway_cpu_ms_per_call_c16": round(
            exchanged[1]["cpu_ms_per_call"]["gateway"] - base[1]["cpu_ms_per_call"]["gateway"], 3
        ),
    }
    return {"end_to_end": points, "added": added, "exchanges": exchanges, "in_process": inside}


def routing_ids() -> tuple[str, str]:
    return ("oidc", "exchanged")
