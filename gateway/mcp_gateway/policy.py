"""Allow/deny glob rules for a profile's tools, resources and prompts, then its CEL rules.

Globs: deny wins over allow; an empty allow list means everything is allowed. They apply to
every caller alike. `policy.rules` (rules.py) then decide per caller, item and call.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from mcp_gateway.config import Policy, Profile, Rules
from mcp_gateway.rules import RuleSet


def _permits(rules: Rules, name: str) -> bool:
    if any(fnmatchcase(name, pattern) for pattern in rules.deny):
        return False
    return not rules.allow or any(fnmatchcase(name, pattern) for pattern in rules.allow)


# Memoized verdicts per ProfilePolicy: a long-lived one checks every tool of a big catalog on
# each tools/list page. Bounded, because tools/call names come from clients.
MEMO_LIMIT = 10_000


class ProfilePolicy:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._tools: dict[str, bool] = {}
        self.rules = RuleSet(policy.rules)

    def allows_tool(self, name: str) -> bool:
        allowed = self._tools.get(name)
        if allowed is None:
            allowed = _permits(self.policy.tools, name)
            if len(self._tools) < MEMO_LIMIT:
                self._tools[name] = allowed
        return allowed

    def allows_renamed_tool(self, name: str, real: str) -> bool:
        """A renamed tool (overrides.py) under both names: denied if either is, allowed if either is."""
        rules = self.policy.tools
        names = (name, real)
        if any(fnmatchcase(n, pattern) for n in names for pattern in rules.deny):
            return False
        return not rules.allow or any(fnmatchcase(n, pattern) for n in names for pattern in rules.allow)

    def allows_resource(self, uri: str) -> bool:
        return _permits(self.policy.resources, uri)

    def allows_prompt(self, name: str) -> bool:
        return _permits(self.policy.prompts, name)

    def idempotent(self, tool: str) -> bool:
        return any(fnmatchcase(tool, pattern) for pattern in self.policy.idempotent_tools)


class PolicyCache:
    """One `ProfilePolicy` per profile and routing-config version, so its memo serves every request.

    A new routing config brings new (frozen) `Policy` objects: the first request after a change
    builds the profile's policy again; `clear()` (on every config change) forgets removed profiles.
    """

    def __init__(self) -> None:
        self._by_profile: dict[str, tuple[Policy, ProfilePolicy]] = {}

    def of(self, profile: Profile) -> ProfilePolicy:
        cached = self._by_profile.get(profile.id)
        if cached is not None and cached[0] is profile.policy:
            return cached[1]
        policy = ProfilePolicy(profile.policy)
        self._by_profile[profile.id] = (profile.policy, policy)
        return policy

    def clear(self) -> None:
        self._by_profile.clear()
