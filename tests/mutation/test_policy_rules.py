"""policy.py in process: deny wins, an empty allow list allows all, verdicts are memoised up to
a bound, and a profile's policy object is reused until its config changes (mutation-tested)."""

from __future__ import annotations

from mcp_gateway import policy as policy_module
from mcp_gateway.auth import Principal
from mcp_gateway.config import Policy, PolicyRule, Profile, Rules
from mcp_gateway.policy import PolicyCache, ProfilePolicy
from mcp_gateway.rules import Verdict


def make(**rules: Rules) -> ProfilePolicy:
    return ProfilePolicy(Policy(**rules))


def test_deny_wins_over_allow_and_globs_are_case_sensitive() -> None:
    rules = Rules(allow=["get_*", "list"], deny=["get_secret*"])
    policy = make(tools=rules, resources=rules, prompts=rules)
    for allows in (policy.allows_tool, policy.allows_resource, policy.allows_prompt):
        assert allows("get_user") and allows("list")
        assert not allows("get_secret_key")  # allowed by a glob, denied by another
        assert not allows("delete") and not allows("GET_user") and not allows("list2")


def test_an_empty_allow_list_allows_everything_not_denied() -> None:
    policy = make(tools=Rules(allow=[], deny=["rm"]), resources=Rules(allow=[]), prompts=Rules(allow=[], deny=["*"]))
    assert policy.allows_tool("anything") and not policy.allows_tool("rm")
    assert policy.allows_resource("file:///x")
    assert not policy.allows_prompt("p")


def test_each_kind_follows_its_own_rules() -> None:
    policy = make(tools=Rules(allow=["t"]), resources=Rules(allow=["r"]), prompts=Rules(allow=["p"]))
    assert policy.allows_tool("t") and not policy.allows_tool("r") and not policy.allows_tool("p")
    assert policy.allows_resource("r") and not policy.allows_resource("t")
    assert policy.allows_prompt("p") and not policy.allows_prompt("t")


def test_tool_verdicts_are_memoised_up_to_the_limit(monkeypatch: object) -> None:
    policy = make(tools=Rules(allow=["a*"]))
    assert policy.allows_tool("ab") is True and policy.allows_tool("b") is False
    assert policy._tools == {"ab": True, "b": False}
    assert policy.allows_tool("ab") is True  # from the memo
    policy._tools = {f"x{i}": False for i in range(policy_module.MEMO_LIMIT - 1)}
    policy.allows_tool("a1")
    assert len(policy._tools) == policy_module.MEMO_LIMIT and policy._tools["a1"] is True
    policy.allows_tool("a2")  # full: answered, not remembered
    assert "a2" not in policy._tools and len(policy._tools) == policy_module.MEMO_LIMIT
    assert policy.allows_tool("a2") is True


def test_idempotent_tools_are_matched_by_glob() -> None:
    policy = ProfilePolicy(Policy(idempotent_tools=["get_*", "list"]))
    assert policy.idempotent("get_x") and policy.idempotent("list")
    assert not policy.idempotent("put") and not policy.idempotent("list_all")


def profile(pid: str, rules: Rules) -> Profile:
    return Profile(id=pid, tenant="t", upstreams=[{"name": "u", "url": "http://u/mcp"}], policy=Policy(tools=rules))


def test_the_cache_reuses_a_policy_until_the_profile_changes() -> None:
    cache = PolicyCache()
    first = profile("p", Rules(allow=["a"]))
    policy = cache.of(first)
    assert cache.of(first) is policy
    assert cache.of(profile("q", Rules(allow=["a"]))) is not policy
    changed = profile("p", Rules(allow=["b"]))
    renewed = cache.of(changed)
    assert renewed is not policy and renewed.allows_tool("b") and not renewed.allows_tool("a")
    assert cache.of(changed) is renewed
    cache.clear()
    assert cache.of(changed) is not renewed


def test_a_renamed_tool_is_judged_under_both_names() -> None:
    policy = make(tools=Rules(allow=["pub_*"], deny=["*_admin"]))
    assert policy.allows_renamed_tool("pub_search", "search")  # allowed under its exposed name
    assert policy.allows_renamed_tool("search", "pub_search")  # ... or its real one
    assert not policy.allows_renamed_tool("find", "search")  # under neither
    assert not policy.allows_renamed_tool("pub_tool", "tool_admin")  # denied under either
    assert not policy.allows_renamed_tool("tool_admin", "pub_tool")
    open_policy = make(tools=Rules(allow=[], deny=["rm"]))
    assert open_policy.allows_renamed_tool("x", "y") and not open_policy.allows_renamed_tool("x", "rm")


def test_a_profile_policy_carries_its_cel_rules() -> None:
    rule = PolicyRule(name="no-deletes", effect="deny", when='name.startsWith("delete")', kinds=["tool"])
    policy = ProfilePolicy(Policy(rules=[rule]))
    caller = Principal("apiKey", "t", "key:1")
    assert policy.rules.names == ["no-deletes"]
    assert policy.rules.decide("tool", "delete_all", "u", caller) == Verdict(False, "no-deletes", "deny")
    assert policy.rules.decide("tool", "read", "u", caller).allowed
    assert not make().rules  # no rules: nothing to evaluate
