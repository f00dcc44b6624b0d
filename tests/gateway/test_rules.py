"""The CEL rule engine in process (rules.py): precedence, list mode versus call mode, memoised
verdicts that still follow the caller, failures that refuse cleanly, and compile errors."""

from __future__ import annotations

from typing import Any

import pytest
from mcp_gateway.auth import Principal
from mcp_gateway.config import Policy, PolicyRule
from mcp_gateway.rules import RuleError, RuleSet, compile_rule


def ruleset(*rules: dict[str, Any]) -> RuleSet:
    return RuleSet(Policy.model_validate({"rules": list(rules)}).rules)


def who(**claims: Any) -> Principal:
    return Principal("oidc", "acme", f"sub:{claims.get('sub', 'x')}", claims=claims)


DENY_BIG = {"name": "big", "effect": "deny", "when": "arguments.n > 10", "kinds": ["tool"]}
OPS_ONLY = {"name": "ops", "effect": "allow", "when": 'has(claims.groups) && "ops" in claims.groups'}


def test_deny_wins_and_allow_rules_make_an_allowlist_per_kind() -> None:
    rules = ruleset(DENY_BIG, {**OPS_ONLY, "kinds": ["tool"]})
    ops, dev = who(groups=["ops"]), who(groups=["dev"])
    assert rules.decide("tool", "t", "u", ops, {"n": 1}).allowed
    refused = rules.decide("tool", "t", "u", ops, {"n": 11})
    assert (refused.allowed, refused.rule, refused.reason) == (False, "big", "deny")
    assert rules.decide("tool", "t", "u", dev, {"n": 1}).reason == "no_allow"
    assert rules.decide("prompt", "p", "u", dev).allowed  # no allow rule judges prompts


def test_lists_leave_argument_rules_out() -> None:
    rules = ruleset(DENY_BIG, {"name": "small-ok", "effect": "allow", "when": "arguments.n < 5", "kinds": ["tool"]})
    caller = who()
    assert rules.decide("tool", "t", "u", caller).allowed  # listed: some arguments pass
    assert not rules.decide("tool", "t", "u", caller, {"n": 7}).allowed  # no allow rule matches 7
    assert rules.decide("tool", "t", "u", caller, {"n": 3}).allowed


def test_memoised_verdicts_follow_the_caller_and_the_upstream() -> None:
    rules = ruleset({"name": "no-x", "effect": "deny", "when": 'upstream == "x" && claims.sub != "root"'})
    for _ in range(3):
        assert not rules.decide("tool", "t", "x", who(sub="bob")).allowed
        assert rules.decide("tool", "t", "x", who(sub="root")).allowed
        assert rules.decide("tool", "t", "y", who(sub="bob")).allowed


@pytest.mark.parametrize("groups", ["ops", 5, None, 1.5])
def test_a_claim_of_the_wrong_type_refuses_a_deny_rule_and_misses_an_allow_rule(groups: Any) -> None:
    deny = ruleset({"name": "no-ops", "effect": "deny", "when": '"ops" in claims.groups'})
    verdict = deny.decide("tool", "t", "u", who(groups=groups))
    assert (verdict.allowed, verdict.rule, verdict.reason) == (False, "no-ops", "error")
    assert "'no-ops' could not be evaluated" in verdict.explain()
    assert '"ops"' not in verdict.explain()
    allow = ruleset({"name": "ops", "effect": "allow", "when": '"ops" in claims.groups'})
    assert allow.decide("tool", "t", "u", who(groups=groups)).reason == "no_allow"


def test_values_cel_cannot_hold_are_refused_not_raised() -> None:
    rules = ruleset(DENY_BIG)
    assert not rules.decide("tool", "t", "u", who(), {"n": 2**80}).allowed


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("nme == 1", "undeclared reference to 'nme'"),
        ("name ==", "Syntax error"),
        ("name == 1", "no matching overload"),
        ("name", "must be true or false, not a string"),
        ("x" * 5000, "longer than 4096"),
    ],
)
def test_rules_that_do_not_compile_are_refused(expression: str, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        compile_rule(expression)
    with pytest.raises(ValueError, match=r"does not compile|at most 4096 characters"):
        PolicyRule(name="r", effect="deny", when=expression)


def test_argument_rules_are_told_apart_at_compile_time() -> None:
    assert compile_rule("arguments.n > 1").reads_arguments
    assert not compile_rule('claims.sub == "a" && name == "t"').reads_arguments


def test_rules_read_an_api_key_s_labels_and_other_callers_have_none() -> None:
    rules = ruleset({"name": "gold", "effect": "allow", "when": 'has(key.labels.tier) && key.labels.tier == "gold"'})
    claims = {"keyId": "k1", "keyName": "bot", "keyLabels": {"tier": "gold"}}
    gold = Principal("apiKey", "acme", "key:k1", claims=claims)
    assert rules.decide("tool", "t", "u", gold).allowed
    silver = Principal("apiKey", "acme", "key:k2", claims={**claims, "keyId": "k2", "keyLabels": {"tier": "silver"}})
    assert rules.decide("tool", "t", "u", silver).reason == "no_allow"
    # A token's claims cannot pose as key labels: `key` is filled from API keys only.
    token = who(sub="eve", keyLabels={"tier": "gold"})
    assert rules.decide("tool", "t", "u", token).reason == "no_allow"
    by_id = ruleset({"name": "one-key", "effect": "deny", "when": 'key.id == "k1" && key.name == "bot"'})
    assert by_id.decide("tool", "t", "u", gold).rule == "one-key"
    assert by_id.decide("tool", "t", "u", who(sub="x")).allowed  # "" for callers without a key


def test_the_verdict_memo_evicts_its_least_recently_used_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    import mcp_gateway.rules as rules_module

    monkeypatch.setattr(rules_module, "MEMO_LIMIT", 3)
    rules = ruleset({"name": "no-bob", "effect": "deny", "when": 'claims.sub == "bob"'})
    bob = who(sub="bob")
    for name in ("a", "b", "c"):
        assert not rules.decide("tool", name, "u", bob).allowed
    rules.decide("tool", "a", "u", bob)  # `a` used again: `b` is now the least recent
    for name in ("d", "e"):  # a full memo keeps memoising new items, evicting the oldest
        rules.decide("tool", name, "u", bob)
    memoised = {key[2] for key in rules._memo}
    assert memoised == {"a", "d", "e"}
