"""Policy rules and call limits on a Profile, through the real operator and API server: valid ones
are rendered into the routing ConfigMap as written; a rule that does not compile makes the Profile
Ready=False (InvalidPolicyRule) with the CEL compiler's message and never reaches the routing
(so never a gateway); fixing it heals the Profile."""

from __future__ import annotations

import uuid
from typing import Any

from tests.operator.conftest import OperatorEnv
from tests.operator.support import wait_for

RULES = [
    {"name": "no-interns", "effect": "deny", "when": '"interns" in claims.groups', "kinds": ["tool"]},
    {"name": "small", "effect": "deny", "when": "arguments.a > 100"},
]
CALL_LIMITS = [{"name": "deletes", "tools": ["*delete*"], "rate": {"calls": 10, "per": "minute"}}]


def _condition(env: OperatorEnv, namespace: str, name: str, status: str) -> dict[str, Any] | None:
    obj = env.res.get("profiles", namespace, name) or {}
    condition = env.res.condition("profiles", namespace, name)
    generation = obj.get("metadata", {}).get("generation")
    if condition and condition["status"] == status and condition["observedGeneration"] == generation:
        return condition
    return None


def test_rules_are_routed_and_a_rule_that_does_not_compile_is_refused(operator_env: OperatorEnv) -> None:
    env, res = operator_env, operator_env.res
    namespace = env.namespace()
    uid = uuid.uuid4().hex[:6]
    res.tenant(f"t-{uid}", [namespace])
    res.create("upstreams", namespace, "tools", {"mcp": {"url": "https://a.example.com/mcp"}})
    good, bad = f"good-{uid}", f"bad-{uid}"
    policy = {"rules": RULES}
    res.create("profiles", namespace, good, {"upstreams": [{"name": "tools"}], "policy": policy,
                                             "limits": {"callLimits": CALL_LIMITS}})  # fmt: skip
    broken = {"rules": [{"name": "typo", "effect": "deny", "when": 'nme == "x"'}]}
    res.create("profiles", namespace, bad, {"upstreams": [{"name": "tools"}], "policy": broken})

    refused = wait_for(lambda: _condition(env, namespace, bad, "False"), what="the bad rule refused")
    assert refused["reason"] == "InvalidPolicyRule"
    assert "rule 'typo' does not compile" in refused["message"]
    assert "undeclared reference to 'nme'" in refused["message"]

    wait_for(lambda: _condition(env, namespace, good, "True"), what="the good profile routed")
    routed = res.routed_profile(env.system_namespace, good)
    assert routed is not None
    assert routed["policy"]["rules"] == RULES
    assert routed["limits"]["callLimits"] == CALL_LIMITS
    assert res.routed_profile(env.system_namespace, bad) is None

    fixed = {"rules": [{"name": "typo", "effect": "deny", "when": 'name == "x"'}]}
    res.patch_spec("profiles", namespace, bad, {"policy": fixed})
    wait_for(lambda: _condition(env, namespace, bad, "True"), what="the fixed profile routed")
    assert res.routed_profile(env.system_namespace, bad) is not None
