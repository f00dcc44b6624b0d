"""Policy rules in CEL (`policy.rules`): who may list and call what, decided per caller.

Each rule is `{name, effect: allow|deny, when: <CEL>, kinds: [tool, resource, prompt]}`. The
expression sees:

- `claims`   map: the caller's verified OIDC claims, or an API key's attributes (Principal.claims)
- `caller`   map: `id` ("key:<id>", "sub:<subject>", "anonymous"), `subject`, `kind`
             (apiKey | oidc | none), `tenant`, `scopes` (list of strings)
- `key`      map: the API key's `id`, `name` and `labels` (a map of strings set when the key was
             created); `id` and `name` are "" and `labels` is {} for callers without a key
- `kind`     "tool" | "resource" | "prompt"
- `name`     the tool or prompt name, or the resource URI (a template's URI template when listing)
- `upstream` the upstream serving it ("" when the gateway does not know it)
- `arguments` map: the call's arguments (prompt arguments for prompts/get; {} otherwise)

Precedence, after the profile's allow/deny globs (which hide an item from everyone first):
1. a matching `deny` rule refuses;
2. if any `allow` rule applies to the item's kind, one of them must match, else it is refused;
3. otherwise the item is allowed.
A rule whose evaluation fails (a missing claim, a claim of another type) counts as matching for
`deny` (fail closed) and as not matching for `allow`.

Lists are judged without arguments: rules that read `arguments` are left out there (a deny rule
on arguments does not hide the tool; an allow rule on arguments may admit it), and applied to
the call itself. So a listed item may still be refused on its arguments, and an item left out
of the list is refused whatever is sent.

Expressions are compiled once (type-checked against the variables above, so a misspelt variable
or a `name == 1` is refused at config load) and cached by text. The verdict of the rules that do
not read arguments is memoised per caller (claims fingerprint), item and upstream: a 1,000-tool
list or a repeated call costs dict lookups after the first time. The memo is bounded and evicts
its least recently used entry, so a long-running gateway keeps memoising its current callers.
"""

from __future__ import annotations

import functools
import json
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cel_expr_python import cel

from mcp_gateway.auth import Principal

log = logging.getLogger("mcp_gateway.rules")

Kind = Literal["tool", "resource", "prompt"]
KINDS: tuple[Kind, ...] = ("tool", "resource", "prompt")

_DYN_MAP = cel.Type.Map(cel.Type.STRING, cel.Type.DYN)
_VARIABLES = {
    "claims": _DYN_MAP,
    "caller": _DYN_MAP,
    "key": _DYN_MAP,
    "kind": cel.Type.STRING,
    "name": cel.Type.STRING,
    "upstream": cel.Type.STRING,
    "arguments": _DYN_MAP,
}
_ENV = cel.NewEnv(variables=_VARIABLES)
# The same minus `arguments`: an expression that compiles here does not read the call's arguments.
_ENV_NO_ARGUMENTS = cel.NewEnv(variables={k: v for k, v in _VARIABLES.items() if k != "arguments"})
MAX_EXPRESSION_CHARS = 4096
MEMO_LIMIT = 20_000
_FINGERPRINTS_LIMIT = 1024


class RuleError(ValueError):
    """A rule that does not compile; the message is the compiler's."""


@dataclass(frozen=True)
class Compiled:
    program: Any  # cel.Expression
    reads_arguments: bool


def _compiler_message(exc: Exception) -> str:
    text = str(exc).strip()
    # cel-cpp prefixes its status code ("INVALID_ARGUMENT: ERROR: <input>:1:5: ...") and appends it.
    text = text.removeprefix("INVALID_ARGUMENT:").strip().removesuffix("[INVALID_ARGUMENT]").strip()
    return text


@functools.lru_cache(maxsize=4096)
def compile_rule(expression: str) -> Compiled:
    """Compile and type-check one `when` expression; raises RuleError with the compiler's message."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise RuleError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        program = _ENV.compile(expression)
    except RuntimeError as exc:
        raise RuleError(_compiler_message(exc)) from None
    returns = program.return_type()
    if returns not in (cel.Type.BOOL, cel.Type.DYN):
        raise RuleError(f"the expression must be true or false, not a {returns.name().lower()}")
    try:
        _ENV_NO_ARGUMENTS.compile(expression)
        reads_arguments = False
    except RuntimeError:
        reads_arguments = True
    return Compiled(program, reads_arguments)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    rule: str | None = None  # the rule that refused (None when allowed, or refused by no allow rule)
    reason: str = ""  # "deny" | "no_allow" | "error": why, never the expression

    def explain(self) -> str:
        """What a refused caller is told: the rule's name, never its contents."""
        if self.reason == "no_allow":
            return "no allow rule of the profile's policy admits it"
        if self.reason == "error" and self.rule is None:
            return "the policy rules could not read this request (a value of a type they cannot hold)"
        if self.reason == "error":
            return (
                f"policy rule {self.rule!r} could not be evaluated for this caller "
                "(a claim or argument it reads is missing or of another type)"
            )
        return f"refused by policy rule {self.rule!r}"


ALLOWED = Verdict(True)
# The caller of work done outside any request (background refreshes): no claims, so claim rules fail closed.
NOBODY = Principal("none", "", "anonymous")


@dataclass(frozen=True)
class _Rule:
    name: str
    deny: bool
    compiled: Compiled


class _KindRules:
    """The rules that apply to one kind, split by whether they read `arguments`."""

    def __init__(self, rules: list[_Rule]) -> None:
        self.static_deny = [r for r in rules if r.deny and not r.compiled.reads_arguments]
        self.static_allow = [r for r in rules if not r.deny and not r.compiled.reads_arguments]
        self.dynamic_deny = [r for r in rules if r.deny and r.compiled.reads_arguments]
        self.dynamic_allow = [r for r in rules if not r.deny and r.compiled.reads_arguments]
        self.allowlist = bool(self.static_allow or self.dynamic_allow)
        self.empty = not rules


@dataclass(frozen=True)
class _Static:
    """The memoised part of a verdict: the argument-free rules' outcome."""

    refusal: Verdict | None
    allow_matched: bool


def _matches(rule: _Rule, activation: Any) -> bool | None:
    """True/False, or None when the evaluation failed (missing key, wrong type, ...)."""
    value = rule.compiled.program.eval(activation)
    if value.type() == cel.Type.BOOL:
        return bool(value.value())
    return None


class RuleSet:
    """A profile's compiled rules; `decide()` is called on every list item and call."""

    def __init__(self, rules: Sequence[Any]) -> None:
        compiled = [_Rule(r.name, r.effect == "deny", compile_rule(r.when)) for r in rules]
        self.names = [r.name for r in rules]
        self._by_kind = {
            kind: _KindRules([c for c, r in zip(compiled, rules, strict=True) if kind in r.kinds]) for kind in KINDS
        }
        self._memo: OrderedDict[tuple[str, str, str, str], _Static] = OrderedDict()
        self._fingerprints: dict[int, tuple[Mapping[str, Any], str]] = {}

    def __bool__(self) -> bool:
        return bool(self.names)

    def applies_to(self, kind: Kind) -> bool:
        return not self._by_kind[kind].empty

    def decide(
        self, kind: Kind, name: str, upstream: str, principal: Principal, arguments: Mapping[str, Any] | None = None
    ) -> Verdict:
        """The verdict for one item; `arguments=None` judges it for a list (argument rules left out)."""
        rules = self._by_kind[kind]
        if rules.empty:
            return ALLOWED
        try:
            return self._decide(rules, kind, name, upstream, principal, arguments)
        except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
            # A value CEL cannot hold (an integer beyond 64 bits, ...): refused, never a crash.
            log.info("policy rules could not read the request (%s); refusing", type(exc).__name__)
            return Verdict(False, None, "error")

    def _decide(
        self,
        rules: _KindRules,
        kind: Kind,
        name: str,
        upstream: str,
        principal: Principal,
        arguments: Mapping[str, Any] | None,
    ) -> Verdict:
        activation: Any = None  # built once per decision, only when a rule has to be evaluated
        key = (self._fingerprint(principal), kind, name, upstream)
        static = self._memo.get(key)
        if static is None:
            activation = cel_activation(_data(kind, name, upstream, principal, arguments))
            static = self._static(rules, activation)
            self._memo[key] = static
            if len(self._memo) > MEMO_LIMIT:
                self._memo.popitem(last=False)  # the least recently used
        else:
            self._memo.move_to_end(key)
        if static.refusal is not None:
            return static.refusal
        if arguments is None:  # a list: argument rules may still admit or refuse the call
            if rules.allowlist and not static.allow_matched and not rules.dynamic_allow:
                return Verdict(False, None, "no_allow")
            return ALLOWED
        if not rules.dynamic_deny and (static.allow_matched or not rules.allowlist):
            return ALLOWED
        if activation is None:
            activation = cel_activation(_data(kind, name, upstream, principal, arguments))
        for rule in rules.dynamic_deny:
            matched = _matches(rule, activation)
            if matched is None:
                return _failed(rule)
            if matched:
                return Verdict(False, rule.name, "deny")
        if not rules.allowlist or static.allow_matched:
            return ALLOWED
        if any(_matches(rule, activation) for rule in rules.dynamic_allow):
            return ALLOWED
        return Verdict(False, None, "no_allow")

    def _static(self, rules: _KindRules, activation: Any) -> _Static:
        for rule in rules.static_deny:
            matched = _matches(rule, activation)
            if matched is None:
                return _Static(_failed(rule), False)
            if matched:
                return _Static(Verdict(False, rule.name, "deny"), False)
        allow = any(_matches(rule, activation) for rule in rules.static_allow)
        return _Static(None, allow)

    def _fingerprint(self, principal: Principal) -> str:
        """The caller as far as rules can tell: id, kind, scopes and claims (cached per claims object)."""
        claims = principal.claims
        cached = self._fingerprints.get(id(claims))
        if cached is not None and cached[0] is claims:
            return cached[1]
        text = json.dumps(
            [principal.caller, principal.kind, principal.tenant, principal.scopes, claims],
            sort_keys=True,
            default=str,
        )
        if len(self._fingerprints) >= _FINGERPRINTS_LIMIT:
            self._fingerprints.clear()
        self._fingerprints[id(claims)] = (claims, text)
        return text


def _failed(rule: _Rule) -> Verdict:
    log.info("policy rule could not be evaluated; refusing", extra={"rule": rule.name})
    return Verdict(False, rule.name, "error")


def subject_of(principal: Principal) -> str:
    """The caller's subject: the `sub` claim (an OIDC token's, or an API key's owner), else its id."""
    sub = principal.claims.get("sub")
    return f"sub:{sub}" if isinstance(sub, str) and sub else principal.caller


def _data(
    kind: str, name: str, upstream: str, principal: Principal, arguments: Mapping[str, Any] | None
) -> dict[str, Any]:
    caller = {
        "id": principal.caller,
        "subject": subject_of(principal),
        "kind": principal.kind,
        "tenant": principal.tenant,
        "scopes": list(principal.scopes),
    }
    return {
        "claims": dict(principal.claims),
        "caller": caller,
        "key": key_of(principal),
        "kind": kind,
        "name": name,
        "upstream": upstream,
        "arguments": dict(arguments) if arguments else {},
    }


def key_of(principal: Principal) -> dict[str, Any]:
    """The `key` variable: an API key caller's id, name and labels (empty for other callers)."""
    claims = principal.claims
    if principal.kind != "apiKey":
        return {"id": "", "name": "", "labels": {}}
    labels = claims.get("keyLabels")
    return {
        "id": str(claims.get("keyId", "")),
        "name": str(claims.get("keyName", "")),
        "labels": dict(labels) if isinstance(labels, Mapping) else {},
    }


def cel_activation(data: dict[str, Any]) -> Any:
    return _ENV.Activation(data)
