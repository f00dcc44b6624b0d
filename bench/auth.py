"""The cost of authentication per request: API keys and OIDC/JWT.

Two views. End to end: three profiles on one gateway differ only in auth mode
(none, apiKey, oidc with a local JWKS server); against `none`, the added p50 at
concurrency 1, the added time per call at concurrency 16 (1/throughput) and the
added gateway CPU per call (the steadiest of the three on a shared machine).
In process: the gateway's own `Authenticator` timed in a loop, which isolates
the verification CPU from everything else on the path.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from mcp_gateway.auth import Authenticator
from mcp_gateway.auth.apikeys import KeyHasher, new_key
from mcp_gateway.config import Profile
from mcp_gateway.store.memory import MemoryStore
from starlette.datastructures import Headers

from bench.overhead import echo_adapter_config, measure
from bench.stack import PEPPER, Stack

ISSUER = "https://issuer.bench.invalid"
AUDIENCE = "mcp-gateway-bench"
KID = "bench-key-1"
LOOPS = 2000


def _keypair() -> tuple[rsa.RSAPrivateKey, bytes]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    jwk |= {"kid": KID, "alg": "RS256", "use": "sig"}
    return private, json.dumps({"keys": [jwk]}).encode()


def _token(private: rsa.RSAPrivateKey) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "bench-user", "iat": now, "exp": now + 3600, "scope": "mcp:tools"}
    return jwt.encode(claims, private, algorithm="RS256", headers={"kid": KID})


def _routing(adapter_url: str, jwks_url: str) -> dict[str, Any]:
    upstreams = [{"name": "echo", "url": adapter_url, "prefix": "never"}]
    oidc = {"issuer": ISSUER, "audience": AUDIENCE, "jwksUrl": jwks_url, "algorithms": ["RS256"]}
    return {
        "gateway": {"allowPrivateJwks": True},  # the JWKS server is on loopback
        "tenants": [{"id": "bench"}],
        "profiles": [
            {"id": "none", "tenant": "bench", "upstreams": upstreams, "auth": {"mode": "none"}},
            {"id": "apikey", "tenant": "bench", "upstreams": upstreams, "auth": {"mode": "apiKey"}},
            {"id": "oidc", "tenant": "bench", "upstreams": upstreams, "auth": {"mode": "oidc", "oidc": oidc}},
        ],
    }


async def _in_process(routing: dict[str, Any], token: str) -> dict[str, float]:
    """Microseconds per `authenticate()` call, API key and JWT, in this process."""
    store = MemoryStore()
    hasher = KeyHasher(PEPPER.encode())
    key, record = new_key(hasher, "bench", ["apikey"])
    await store.insert_key(record)
    for _ in range(99):  # a realistic key table, not a single entry
        await store.insert_key(new_key(hasher, "bench", [])[1])
    authenticator = Authenticator(store, hasher, allow_private_jwks=lambda: True)
    profiles = {p["id"]: Profile.model_validate(p) for p in routing["profiles"]}
    out = {}
    for mode, credential in (("apiKey", key), ("oidc", token)):
        profile = profiles["apikey" if mode == "apiKey" else "oidc"]
        headers = Headers({"authorization": f"Bearer {credential}"})
        await authenticator.authenticate(profile, headers, "")  # fetches the JWKS once
        start = time.perf_counter()
        for _ in range(LOOPS):
            await authenticator.authenticate(profile, headers, "")
        out[f"{mode}_us_per_verification"] = round((time.perf_counter() - start) / LOOPS * 1e6, 1)
    return out


def run(seconds: int) -> dict[str, Any]:
    private, jwks = _keypair()
    token = _token(private)
    with Stack("auth") as stack:
        jwks_file = stack.workdir / "jwks.json"
        jwks_file.write_bytes(jwks)
        jwks_base, _ = stack.python_module("jwks", "bench.jwks_server", str(jwks_file), ready_path="/jwks.json")
        echo_base, _ = stack.python_module("echo", "bench.echo_server", ready_path="/mcp")
        adapter_url, _ = stack.adapter("echo", echo_adapter_config(f"{echo_base}/mcp"))
        routing = _routing(adapter_url, f"{jwks_base}/jwks.json")
        gateway = stack.gateway("auth", routing)
        credentials = {
            "none": None,
            "apikey": {"Authorization": f"Bearer {gateway.mint_key('bench', ['apikey'])}"},
            "oidc": {"Authorization": f"Bearer {token}"},
        }
        pids = {"gateway": gateway.pid}
        points = {
            mode: measure(gateway.url(mode), cred, seconds, 1, (1, 16), pids) for mode, cred in credentials.items()
        }
        in_process = asyncio.run(_in_process(routing, token))

    def added(mode: str) -> dict[str, float]:
        base, this = points["none"], points[mode]
        per_call = 1000 / this[1]["calls_per_s"] - 1000 / base[1]["calls_per_s"]
        cpu = this[1]["cpu_ms_per_call"]["gateway"] - base[1]["cpu_ms_per_call"]["gateway"]
        return {
            "added_p50_ms_c1": round(this[0]["p50_ms"] - base[0]["p50_ms"], 3),
            "added_ms_per_call_c16": round(per_call, 3),
            "added_gateway_cpu_ms_per_call_c16": round(cpu, 3),
        }

    return {"end_to_end": points, "added": {m: added(m) for m in ("apikey", "oidc")}, "in_process": in_process}
