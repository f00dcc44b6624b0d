"""Profiles -> the gateway's routing ConfigMap; tenancy rules; status, Events;
and a running gateway that picks up routing changes within 5 seconds."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from typing import Any

import httpx
from mcp import Client

from tests.operator.conftest import OperatorEnv
from tests.operator.support import wait_for
from tests.support.processes import ManagedProcess, free_port

LIMITS = {"rate": {"perSecond": 5, "burst": 10}, "quota": {"daily": 100}, "timeoutSeconds": 20}


def _uid() -> str:
    return uuid.uuid4().hex[:6]


def _ready(env: OperatorEnv, namespace: str, name: str, status: str = "True") -> dict[str, Any] | None:
    obj = env.res.get("profiles", namespace, name) or {}
    condition = env.res.condition("profiles", namespace, name)
    generation = obj.get("metadata", {}).get("generation")
    if condition and condition["status"] == status and condition["observedGeneration"] == generation:
        return condition
    return None


def test_profile_is_rendered_into_routing(operator_env: OperatorEnv) -> None:
    env, res = operator_env, operator_env.res
    namespace = env.namespace()
    tenant = f"acme-{_uid()}"
    res.tenant(tenant, [namespace], limits=LIMITS, displayName="Acme")
    res.create("upstreams", namespace, "tools", {"mcp": {"url": "https://tools.example.com/mcp"}})
    profile_id = f"dev-{_uid()}"
    spec = {
        "id": profile_id,
        "upstreams": [{"name": "tools", "prefix": "always", "timeoutSeconds": 12, "retries": {"attempts": 1}}],
        "retries": {"attempts": 4, "backoffBaseSeconds": 0.1, "jitter": 0, "retryOn": ["unavailable"]},
        "auth": {
            "mode": "oidc",
            "oidc": {"issuer": "https://issuer.test", "audience": "mcp", "jwksUrl": "https://issuer.test/jwks"},
        },
        "policy": {"tools": {"allow": ["get_*"], "deny": ["get_secret"]}, "idempotentTools": ["get_*"]},
        "limits": {"perKeyRate": {"perSecond": 1, "burst": 2}, "toolTimeouts": {"slow": 60}},
        "discovery": {"mode": "search", "alwaysVisible": ["get_*"], "maxResults": 8, "reveal": True},
    }
    res.create("profiles", namespace, "dev", spec)

    condition = wait_for(lambda: _ready(env, namespace, "dev"), what="Profile Ready")
    assert condition["reason"] == "Routed"
    routed = res.routed_profile(env.system_namespace, profile_id)
    assert routed == {
        "id": profile_id,
        "tenant": tenant,
        "upstreams": [
            {
                "name": "tools",
                "url": env.adapter_url(namespace, "tools"),
                "prefix": "always",
                "timeoutSeconds": 12,
                "retries": {"attempts": 1},
                "sendCallerHeader": True,  # the operator's own adapter, which trusts the gateway's caller header
            }
        ],
        "auth": spec["auth"],
        "policy": spec["policy"],
        "limits": spec["limits"],
        "retries": spec["retries"],
        "discovery": spec["discovery"],
    }
    tenants = {t["id"]: t for t in res.routing(env.system_namespace)["tenants"]}
    assert tenants[tenant] == {"id": tenant, "displayName": "Acme", "limits": LIMITS}

    status = (res.get("profiles", namespace, "dev") or {})["status"]
    assert status["endpoint"] == f"http://gateway.test:8080/{profile_id}/mcp"
    assert status["tenant"] == tenant
    adapters = next(c for c in status["conditions"] if c["type"] == "UpstreamsReady")
    assert (adapters["status"], adapters["reason"]) == ("False", "AdaptersNotReady")
    res.wait_event(namespace, "dev", "Routed")
    (row,) = res.table("profiles", namespace)  # `kubectl get profiles`
    assert (row["Name"], row["Tenant"], row["Ready"]) == ("dev", tenant, "True")
    assert row["Endpoint"] == status["endpoint"]
    tenant_ready = wait_for(lambda: res.condition("tenants", None, tenant), what="Tenant status")
    assert tenant_ready["status"] == "True"

    # Update: the routing follows; delete: the route goes away.
    res.patch_spec("profiles", namespace, "dev", {"policy": {"tools": {"allow": ["*"], "deny": []}}})
    wait_for(
        lambda: (p := res.routed_profile(env.system_namespace, profile_id)) and p["policy"]["tools"]["allow"] == ["*"],
        what="updated policy in routing",
    )
    wait_for(lambda: _ready(env, namespace, "dev"), what="Ready for generation 2")
    res.delete("profiles", namespace, "dev")
    wait_for(lambda: res.routed_profile(env.system_namespace, profile_id) is None, what="route removed")


def test_cross_tenant_and_missing_upstreams_are_refused_without_breaking_others(operator_env: OperatorEnv) -> None:
    env, res = operator_env, operator_env.res
    ours, theirs, orphan = env.namespace(), env.namespace(), env.namespace()
    tenant, other = f"t1-{_uid()}", f"t2-{_uid()}"
    res.tenant(tenant, [ours])
    res.tenant(other, [theirs])
    res.create("upstreams", ours, "mine", {"mcp": {"url": "https://a.example.com/mcp"}})
    res.create("upstreams", theirs, "foreign", {"mcp": {"url": "https://b.example.com/mcp"}})
    good, bad, missing, homeless = (f"{p}-{_uid()}" for p in ("good", "bad", "missing", "homeless"))
    res.create("profiles", ours, good, {"upstreams": [{"name": "mine"}]})
    res.create("profiles", ours, bad, {"upstreams": [{"name": "mine"}, {"name": "foreign", "namespace": theirs}]})
    res.create("profiles", ours, missing, {"upstreams": [{"name": "later"}]})
    res.create("profiles", orphan, homeless, {"upstreams": [{"name": "mine", "namespace": ours}]})

    foreign = wait_for(lambda: _ready(env, ours, bad, "False"), what="foreign reference refused")
    assert foreign["reason"] == "ForeignUpstream"
    assert f"Upstream {theirs}/foreign belongs to tenant {other!r}, not to {tenant!r}" in foreign["message"]
    absent = wait_for(lambda: _ready(env, ours, missing, "False"), what="missing reference refused")
    assert absent["reason"] == "UpstreamNotFound" and f"Upstream {ours}/later does not exist" in absent["message"]
    no_tenant = wait_for(lambda: _ready(env, orphan, homeless, "False"), what="tenantless namespace refused")
    assert no_tenant["reason"] == "NoTenant" and "add it to a Tenant" in no_tenant["message"]
    res.wait_event(ours, bad, "ForeignUpstream", "Warning")

    wait_for(lambda: _ready(env, ours, good), what="the valid profile still Ready")
    routed = {p["id"] for p in res.routing(env.system_namespace)["profiles"]}
    assert good in routed and not routed & {bad, missing, homeless}

    # Fixing the problem heals the profile.
    res.create("upstreams", ours, "later", {"mcp": {"url": "https://c.example.com/mcp"}})
    wait_for(lambda: _ready(env, ours, missing), what="profile Ready once its Upstream exists")
    assert res.routed_profile(env.system_namespace, missing) is not None


def test_duplicate_profile_id_keeps_the_first(operator_env: OperatorEnv) -> None:
    env, res = operator_env, operator_env.res
    first_ns, second_ns = env.namespace(), env.namespace()
    res.tenant(f"dup-{_uid()}", [first_ns, second_ns])
    for namespace in (first_ns, second_ns):
        res.create("upstreams", namespace, "u", {"mcp": {"url": "https://a.example.com/mcp"}})
    shared_id = f"shared-{_uid()}"
    res.create("profiles", first_ns, "p", {"id": shared_id, "upstreams": [{"name": "u"}]})
    wait_for(lambda: _ready(env, first_ns, "p"))
    time.sleep(1.1)  # creationTimestamp has 1s resolution: make "first" unambiguous
    res.create("profiles", second_ns, "p", {"id": shared_id, "upstreams": [{"name": "u"}]})
    conflict = wait_for(lambda: _ready(env, second_ns, "p", "False"), what="id conflict")
    assert conflict["reason"] == "ProfileIdConflict" and f"{first_ns}/p" in conflict["message"]
    routed = res.routed_profile(env.system_namespace, shared_id) or {}
    assert routed["upstreams"][0]["url"] == env.adapter_url(first_ns, "u")


def test_tool_count_and_adapter_readiness_reach_the_profile(operator_env: OperatorEnv) -> None:
    env, res = operator_env, operator_env.res
    namespace = env.namespace()
    res.tenant(f"live-{_uid()}", [namespace])
    res.create("upstreams", namespace, "live-a", {"mcp": {"url": "https://a.example.com/mcp"}})
    res.create("profiles", namespace, "p", {"upstreams": [{"name": "live-a"}]})

    def adapters_ready() -> dict[str, Any] | None:
        condition = res.condition("profiles", namespace, "p", "UpstreamsReady")
        return condition if condition and condition["status"] == "True" else None

    wait_for(adapters_ready, what="UpstreamsReady")
    status = (res.get("profiles", namespace, "p") or {})["status"]
    upstream_status = (res.get("upstreams", namespace, "live-a") or {})["status"]
    assert status["toolCount"] == upstream_status["toolCount"] > 0


def _start_gateway(env: OperatorEnv) -> tuple[ManagedProcess, str]:
    from tests.support.processes import start_process

    port = free_port()
    cmd = [
        sys.executable, "-m", "mcp_gateway.cli", "serve",
        "--routing-configmap", f"{env.system_namespace}/mcp-gateway-routing",
        "--kubeconfig", str(env.kube.kubeconfig),
        "--port", str(port),
    ]  # fmt: skip
    process = start_process(
        cmd,
        name="gateway-for-operator",
        env={
            "MCP_GATEWAY_ADMIN_TOKEN": "operator-test-admin-token",
            "MCP_GATEWAY_KEY_PEPPER": "operator-test-pepper-0123",
        },
        ready_url=f"http://127.0.0.1:{port}/readyz",
    )
    return process, f"http://127.0.0.1:{port}"


async def _tool_count(url: str) -> int:
    async with Client(url, cache=None, read_timeout_seconds=5) as client:
        return len((await client.list_tools()).tools)


async def test_running_gateway_follows_routing_within_5_seconds(operator_env: OperatorEnv) -> None:
    env, res = operator_env, operator_env.res
    namespace = env.namespace()
    res.tenant(f"gw-{_uid()}", [namespace])
    res.create("upstreams", namespace, "live-gw", {"mcp": {"url": "https://a.example.com/mcp"}})
    wait_for(lambda: res.routing(env.system_namespace), what="routing ConfigMap")
    gateway, base = _start_gateway(env)
    try:
        profile_id = f"e2e-{_uid()}"
        created = time.monotonic()
        res.create(
            "profiles",
            namespace,
            "e2e",
            {"id": profile_id, "auth": {"mode": "none"}, "upstreams": [{"name": "live-gw"}]},
        )
        # Through the gateway, over the route the operator rendered, to the (stub) adapter.
        count = 0
        while time.monotonic() - created < 5 and not count:
            try:
                count = await _tool_count(f"{base}/{profile_id}/mcp")
            except Exception:
                await asyncio.sleep(0.2)
        assert count > 0, f"gateway did not serve /{profile_id}/mcp within 5s:\n{gateway.log_text()[-3000:]}"

        deleted = time.monotonic()
        res.delete("profiles", namespace, "e2e")
        status = 200
        # An unknown profile answers a request without an API key like an apiKey profile: 401.
        while time.monotonic() - deleted < 5 and status != 401:
            status = httpx.post(f"{base}/{profile_id}/mcp", json={}, timeout=5).status_code
            await asyncio.sleep(0.1)
        assert status == 401, "gateway still served the deleted profile after 5s"
    finally:
        gateway.stop()
