"""A Tenant's API-key Secrets reach the gateway's routing as references only, and only from
namespaces the tenant owns; a reference elsewhere shows on the Tenant as Ready=False."""

from __future__ import annotations

import uuid
from typing import Any

from kubernetes import client as k8s

from tests.operator.conftest import OperatorEnv
from tests.operator.support import wait_for

VALUE = "never-in-the-configmap-0123456789"


def _routed_tenant(env: OperatorEnv, tenant: str) -> dict[str, Any] | None:
    return next((t for t in env.res.routing(env.system_namespace).get("tenants", []) if t["id"] == tenant), None)


def test_key_secrets_are_rendered_as_references_from_owned_namespaces(operator_env: OperatorEnv) -> None:
    env, res = operator_env, operator_env.res
    owned, foreign = env.namespace(), env.namespace()
    res.core.create_namespaced_secret(
        owned, k8s.V1Secret(metadata=k8s.V1ObjectMeta(name="keys"), string_data={"bot": VALUE})
    )
    other = f"other-{uuid.uuid4().hex[:6]}"
    res.tenant(other, [foreign])
    tenant = f"keys-{uuid.uuid4().hex[:6]}"
    refs = [{"namespace": owned, "name": "keys"}, {"namespace": foreign, "name": "stolen"}]
    res.tenant(tenant, [owned], apiKeys={"adminApi": False, "secretRefs": refs})

    routed = wait_for(lambda: _routed_tenant(env, tenant), what="tenant in the routing ConfigMap")
    assert routed["apiKeys"] == {"adminApi": False, "secretRefs": [{"namespace": owned, "name": "keys"}]}
    cm = res.core.read_namespaced_config_map("mcp-gateway-routing", env.system_namespace)
    assert VALUE not in str(cm.data)

    def not_ready() -> dict[str, Any] | None:
        condition = res.condition("tenants", None, tenant)
        return condition if condition and condition["status"] == "False" else None

    condition = wait_for(not_ready, what="Tenant Ready=False")
    assert condition["reason"] == "SecretNotOwned"
    assert f"{foreign}/stolen" in condition["message"] and "namespace this tenant owns" in condition["message"]

    # Fixing the reference makes the Tenant Ready again.
    res.custom.patch_cluster_custom_object(
        "mcpgateway.dev", "v1alpha1", "tenants", tenant, {"spec": {"apiKeys": {"secretRefs": refs[:1]}}}
    )

    def ready() -> dict[str, Any] | None:
        condition = res.condition("tenants", None, tenant)
        return condition if condition and condition["status"] == "True" else None

    wait_for(ready, what="Tenant Ready=True")
