"""Structure-aware reranking: what a request asks to *do*, to *which* object, *where*.

A bag of words ranks `readAppsV1NamespacedDeploymentStatus` next to `readAppsV1NamespacedDeployment`
and `listCoreV1PodForAllNamespaces` next to `listCoreV1NamespacedPod`: they share every word that
matters. Tools converted from REST operations (OpenAPI operationIds) and most `verb_noun` MCP tools
carry structure a bag ignores, read here from the name and the input schema alone:

- action: the name's leading verb (list, read/get, create, replace, patch/update, delete, watch);
  a name with `Collection` after `delete` deletes many;
- scope: namespaced (`Namespaced` in the name, or a required `namespace` parameter) or across all
  namespaces (`ForAllNamespaces`);
- many vs one: list / watch…List / delete…Collection act on a collection, the rest on one object;
- subresource: a name that extends another tool's name by a suffix (`…Pod` → `…PodStatus`,
  `…PodLog`, `…DeploymentScale`) where the longer name has no collection operation of its own.
  Derived from the catalog, so no list of kinds or subresources is built in.

The request is read with general English→REST knowledge (the verb groups of text.py, "all
namespaces"/"cluster wide" for scope, plural nouns for many), and the top candidates of the
existing ranking are moved down for each point where the tool's structure contradicts it. A tool
with no recognisable structure (no leading verb), or the only operation on its object (`get-sum`:
its verb says little), is never moved. Measured in bench/README.md (session 9).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from mcp_gateway.discovery.text import (
    ABBREVIATIONS,
    HTTP_METHODS,
    STOP_WORDS,
    SYNONYM_GROUPS,
    SYNONYMS,
    split_words,
    stem,
)

# Canonical actions and the verbs that name them in a tool name.
NAME_VERBS: dict[str, str] = {
    "list": "list",
    "read": "read",
    "get": "read",
    "fetch": "read",
    "describe": "read",
    "create": "create",
    "add": "create",
    "new": "create",
    "replace": "replace",
    "put": "replace",
    "set": "replace",
    "patch": "patch",
    "update": "patch",
    "edit": "patch",
    "modify": "patch",
    "delete": "delete",
    "remove": "delete",
    "watch": "watch",
}
COLLECTION_ACTIONS = frozenset({"list", "deletecollection", "watchlist"})


def _group(word: str) -> set[str]:
    out = {stem(word)}
    for group in SYNONYM_GROUPS:
        if word in group:
            out.update(stem(w) for w in group)
    return out


# What a request's words say about the action: the verb groups text.py already knows.
QUERY_ACTIONS: dict[str, frozenset[str]] = {
    "list": frozenset(_group("list") | {"which"}),
    "read": frozenset(_group("read") | _group("describe")),
    "create": frozenset(_group("create")),
    "delete": frozenset(_group("delete")),
    "patch": frozenset(_group("update") | _group("patch")),
    "replace": frozenset(_group("replace") | _group("update")),
    "watch": frozenset(_group("watch")),
}
QUANTIFIERS = frozenset({"all", "every", "each", "which", "many"})
SCOPE_ALL_WORDS = frozenset({"all", "every", "each", "across", "whole", "entire", "wide"})
SCOPE_PREPOSITIONS = frozenset({"in", "inside", "within", "from", "of", "under"})

# Penalties for each contradiction, and how far they move a tool: the top DEPTH candidates of the
# ranking are rescaled to 0..1 (best 1) and WEIGHT x the summed penalties is added. Chosen on the
# tuned requests (bench/README.md); WEIGHT 0 gives the plain ranking.
W_ACTION = 1.0
W_SCOPE = 1.0
W_MANY = 0.5
W_SUB = 1.0
W_KIND = 1.0
LOOSE = True  # the only operation on its object still has a kind (`loose` shapes)
RECALL = 10  # tools of a named kind added to the candidates (`with_named_kinds`)
WEIGHT = 0.5
DEPTH = 40


@dataclass(frozen=True)
class Shape:
    """A tool's structure; `action` None means the name has no recognisable leading verb."""

    action: str | None
    scope: str | None  # "namespaced", "all" or None
    base: tuple[str, ...]  # the object's words (action, scope and markers removed)
    sub: frozenset[str]  # the subresource's terms, empty for the object itself
    resource: frozenset[str]  # the object's terms (including joined compounds)
    siblings: frozenset[str] = frozenset()  # terms of the subresources the same object has
    kind: str = ""  # the object's kind as one stemmed word (`persistentvolumeclaim`), API group and version cut
    kind_words: tuple[str, ...] = ()  # the kind's words, stemmed (`persistent`, `volume`, `claim`)
    listed: bool = True  # the object has a collection operation (list...): a kind, not a subresource
    loose: bool = False  # the only operation on its object: only its kind is read


def _tool_words(name: str, required: Sequence[str]) -> tuple[str | None, str | None, tuple[str, ...]]:
    words = split_words(name)
    if not words or words[0] not in NAME_VERBS:
        return None, None, tuple(words)
    action = NAME_VERBS[words[0]]
    rest = words[1:]
    scope = None
    if "namespaced" in rest or "namespace" in required:
        scope = "namespaced"
    if len(rest) >= 3 and rest[-3:] == ["for", "all", "namespaces"]:
        scope, rest = "all", rest[:-3]
    if action == "delete" and "collection" in rest:
        action = "deletecollection"
        rest = [w for w in rest if w != "collection"]
    if action == "watch" and rest and rest[-1] == "list":
        action, rest = "watchlist", rest[:-1]
    rest = [w for w in rest if w != "namespaced"]
    return action, scope, tuple(rest)


def _connect_words(name: str) -> tuple[str, ...] | None:
    words = split_words(name)
    if not words or words[0] != "connect":
        return None
    rest = [w for w in words[1:] if w not in HTTP_METHODS and w != "namespaced"]
    if len(rest) >= 2 and rest[-2:] == ["with", "path"]:
        rest = rest[:-2]
    return tuple(rest)


def _kind_words(base: Sequence[str]) -> tuple[str, ...]:
    """The kind's words of an object: what follows the API version (`core v 1 pod` -> `pod`,
    `networking v 1 beta 1 ip address` -> `ip address`); the whole object when there is none."""
    for i in range(len(base) - 2, -1, -1):
        if base[i] == "v" and base[i + 1].isdigit():
            rest = list(base[i + 2 :])
            if len(rest) >= 2 and rest[0] in ("alpha", "beta") and rest[1].isdigit():
                rest = rest[2:]
            return tuple(rest)
    return tuple(base)


def kind_key(words: Sequence[str]) -> str:
    """A kind's words joined and stemmed twice, so plurals of -ing nouns meet their singular
    ("role bindings" -> `rolebindings` -> `rolebinding` -> `rolebind`, as `RoleBinding`)."""
    return stem(stem("".join(words)))


def _terms(words: Sequence[str]) -> frozenset[str]:
    stems = [stem(w) for w in words if not w.isdigit()]
    joined = [stem("".join(words[i : i + n])) for n in (2, 3) for i in range(len(words) - n + 1)]
    return frozenset(stems + joined)


def tool_shapes(names: Sequence[str], required: Sequence[Sequence[str]]) -> list[Shape | None]:
    """The structure of each tool of a catalog (None: none recognised), from names and required parameters."""
    raw = [_tool_words(n, r) for n, r in zip(names, required, strict=True)]
    bases = {base for action, _, base in raw if action is not None}
    collections = {base for action, _, base in raw if action in COLLECTION_ACTIONS}
    shapes: list[Shape | None] = []
    for name, (action, scope, base) in zip(names, raw, strict=True):
        connect = _connect_words(name)
        if connect is not None:
            action, scope, base = "connect", "namespaced" if "namespaced" in split_words(name) else None, connect
        if action is None:
            shapes.append(None)
            continue
        sub: tuple[str, ...] = ()
        if base not in collections:
            # the longest other object this name extends: what follows it is a subresource
            for cut in range(len(base) - 1, 0, -1):
                if base[:cut] in bases and base[:cut] != base:
                    base, sub = base[:cut], base[cut:]
                    break
        kind = _kind_words(base)
        shapes.append(
            Shape(
                action,
                scope,
                base,
                _terms(sub) if sub else frozenset(),
                _terms(base),
                kind=kind_key(kind),
                kind_words=tuple(kind_key([w]) for w in kind),
                listed=base in collections,
            )
        )
    # Structure tells apart operations on one object; a tool whose object has no other operation
    # (`get-sum`, `getCoreV1APIResources`) keeps its verb only loosely, so only its kind is read
    # (a `loose` shape: moved down when the request names another kind, nothing else).
    actions: dict[tuple[str, ...], set[str]] = {}
    for shape in shapes:
        if shape is not None:
            actions.setdefault(shape.base, set()).add(shape.action or "")
    every = shapes
    shapes = [sh if sh is not None and len(actions[sh.base]) > 1 else None for sh in shapes]
    subs: dict[tuple[str, ...], set[str]] = {}
    for shape in shapes:
        if shape is not None and shape.sub:
            subs.setdefault(shape.base, set()).update(shape.sub)
    out = [
        Shape(
            sh.action,
            sh.scope,
            sh.base,
            sh.sub,
            sh.resource,
            frozenset(subs.get(sh.base, ())),
            sh.kind,
            sh.kind_words,
            sh.listed,
        )
        if sh is not None and not sh.sub
        else sh
        for sh in shapes
    ]
    if not LOOSE:
        return out
    return [
        sh
        if sh is not None or raw is None
        else Shape(
            None, None, raw.base, frozenset(), raw.resource, frozenset(), raw.kind, raw.kind_words, raw.listed, True
        )
        for sh, raw in zip(out, every, strict=True)
    ]


@dataclass(frozen=True, eq=False)
class Kinds:
    """The catalog's kinds, for finding the ones a request names: each kind by its stemmed words
    joined (`persistentvolumeclaim`: "persistent volume claims", "PersistentVolumeClaim" and
    "persistentvolumeclaims" all join to it), plus the abbreviations text.py knows and the initials
    of kinds of three words or more ("pvc", "hpa"), when those are no kind or stop word themselves."""

    keys: frozenset[str] = frozenset()
    abbreviations: Mapping[str, str] = field(default_factory=dict)  # abbreviation -> kind key
    longest: int = 0  # words in the longest kind
    members: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # kind key -> the tools acting on it


def kind_table(shapes: Sequence[Shape | None]) -> Kinds:
    words = {sh.kind: sh.kind_words for sh in shapes if sh is not None and sh.kind and not sh.loose}
    short = {a: kind_key([full]) for a, full in ABBREVIATIONS.items() if kind_key([full]) in words}
    for key, kind in words.items():
        initials = "".join(w[0] for w in kind)
        if len(kind) >= 3 and initials not in words and initials not in STOP_WORDS:
            short.setdefault(initials, key)
    members: dict[str, list[int]] = {}
    for i, sh in enumerate(shapes):
        if sh is not None and sh.kind and not sh.loose:
            members.setdefault(sh.kind, []).append(i)
    return Kinds(
        frozenset(words),
        short,
        max((len(k) for k in words.values()), default=0),
        {k: tuple(v) for k, v in members.items()},
    )


def with_named_kinds(
    request: Request,
    best: list[tuple[int, float]],
    scores: Mapping[int, float],
    kinds: Kinds,
    allowed: Callable[[int], bool],
) -> list[tuple[int, float]]:
    """`best` plus the tools of the kinds the request names that the ranking left out (those it
    scored at all, best first): "list all the namespaces" must reach `listCoreV1Namespace` even
    when every `…Namespaced…` tool outscores it on the word. They join at the end, so the rescaled
    ranking above them is unchanged; the reranking then weighs their structure like the others'."""
    if not RECALL or not request.kinds:
        return best
    present = {i for i, _ in best}
    extra = [
        (i, scores[i])
        for kind in request.kinds
        for i in kinds.members.get(kind, ())
        if i not in present and i in scores and allowed(i)
    ]
    extra.sort(key=lambda item: -item[1])
    return best[:DEPTH] + extra[:RECALL] + best[DEPTH:]


@dataclass(frozen=True)
class Request:
    """A request's structure, as far as its words tell it."""

    actions: frozenset[str]
    scope: str | None
    quantified: frozenset[str]  # stems right after "all", "every", "which", "how many"
    plural: frozenset[str]  # stems whose word was plural
    singular: frozenset[str]
    terms: frozenset[str]  # stems, joined pairs and their synonyms
    kinds: frozenset[str] = frozenset()  # the catalog kinds the request names (`Kinds` keys)
    left: frozenset[str] = frozenset()  # stems of the words that name no kind


def named_kinds(
    words: Sequence[str], kinds: Kinds, skip: frozenset[int] = frozenset()
) -> tuple[frozenset[str], frozenset[str]]:
    """The kinds named in a request's words, longest first ("cluster role binding" is that kind,
    not "cluster role" and "role"; words at the `skip` positions name none), and the stems of the
    words left over."""
    found: set[str] = set()
    left: set[str] = set()
    short = kinds.abbreviations
    i = 0
    while i < len(words):
        for n in range(min(kinds.longest, len(words) - i), 0, -1):
            if any(j in skip for j in range(i, i + n)):
                continue
            key = kind_key(words[i : i + n])
            if key in kinds.keys:
                found.add(key)
            elif n == 1 and (words[i] in short or key in short):  # "pvc", "pvcs"
                found.add(short.get(words[i]) or short[key])
            else:
                continue
            i += n
            break
        else:
            left.add(kind_key(words[i : i + 1]))
            i += 1
    return frozenset(found), frozenset(left)


def parse_request(query: str, kinds: Kinds | None = None) -> Request:
    """What a request's words say about action, scope, many-or-one, subresource and kind."""
    raw = split_words(query)
    words = [ABBREVIATIONS.get(w, w) for w in raw]
    stems = [stem(w) for w in words]
    actions = {a for a, vocab in QUERY_ACTIONS.items() if vocab.intersection(stems)}
    if "rid" in words and "get" in words:  # "get rid of"
        actions.discard("read")
        actions.add("delete")
    scope = None
    scoping: set[int] = set()  # positions of "namespace" words that say where, not what
    every: set[int] = set()  # those saying "all namespaces": the kind itself when no other is named
    for i, w in enumerate(words):
        before, around = set(words[max(0, i - 2) : i]), set(words[max(0, i - 2) : i + 2])
        if w in ("namespace", "namespaces"):
            if before & SCOPE_ALL_WORDS:
                scope = "all"
                every.add(i)
            elif set(words[max(0, i - 3) : i]) & SCOPE_PREPOSITIONS:
                scope = scope or "namespaced"
                scoping.add(i)
        elif (w == "cluster" and around & SCOPE_ALL_WORDS) or w == "everywhere":
            scope = "all"
    plural = frozenset(s for w, s in zip(words, stems, strict=True) if s != w and w.endswith("s"))
    singular = frozenset(s for w, s in zip(words, stems, strict=True) if s == w)
    joined = [stem(words[i] + words[i + 1]) for i in range(len(words) - 1)]
    terms = set(stems) | set(joined)
    for s in list(terms):
        terms.update(SYNONYMS.get(s, ()))
    quantified = frozenset(
        stems[j] for i, w in enumerate(words) if w in QUANTIFIERS for j in range(i + 1, min(i + 4, len(words)))
    )
    named: frozenset[str] = frozenset()
    left = frozenset(kind_key([w]) for w in raw)
    if kinds is not None and kinds.keys:
        named, left = named_kinds(raw, kinds, frozenset(scoping | every))
        if not named and every:  # "list all namespaces": the scope words are the only kind named
            named, left = named_kinds(raw, kinds, frozenset(scoping))
    return Request(
        frozenset(actions),
        scope,
        quantified,
        plural,
        singular,
        frozenset(terms),
        named,
        left,
    )


def _extends(shape: Shape, named: frozenset[str]) -> bool:
    """An object without a collection operation whose kind begins with a named kind: that kind's
    subresource when the catalog (or the caller's view of it) lacks the kind's own operations
    (`readAppsV1NamespacedDeploymentStatus` without `readAppsV1NamespacedDeployment`)."""
    if shape.listed:
        return False
    return any(kind_key(shape.kind_words[:n]) in named for n in range(1, len(shape.kind_words)))


def _other_kind(shape: Shape, req: Request) -> bool:
    """The request names a kind and this tool acts on another one. Its head noun ("revision" of
    `ControllerRevision`) counts as naming it when that word names no kind of its own."""
    return shape.kind not in req.kinds and shape.kind_words[-1] not in req.left and not _extends(shape, req.kinds)


def agreement(req: Request, shape: Shape | None) -> float:
    """How much a tool's structure contradicts the request: 0 when nothing does, else negative.
    Only contradictions count, so a tool without structure (no leading verb) is not put behind
    structured ones that merely agree."""
    if shape is None:
        return 0.0
    if shape.loose:
        return -W_KIND if shape.kind and req.kinds and _other_kind(shape, req) else 0.0
    score = 0.0
    family = {"deletecollection": "delete", "watchlist": "watch"}.get(shape.action or "", shape.action)
    if req.actions and family in QUERY_ACTIONS and family not in req.actions:
        score -= W_ACTION
    if req.scope and shape.scope and req.scope != shape.scope:
        score -= W_SCOPE
    if shape.kind and req.kinds and _other_kind(shape, req):
        score -= W_KIND
    many = shape.action in COLLECTION_ACTIONS
    if (req.plural | req.quantified) & shape.resource:
        score -= 0.0 if many else W_MANY
    elif req.singular & shape.resource and many:
        score -= W_MANY
    if shape.action == "connect":
        if req.actions and not shape.sub & req.terms:
            score -= W_ACTION  # a request for a REST verb, not for a connection (exec, proxy...)
    else:
        if shape.sub and not shape.sub & req.terms:
            score -= W_SUB  # a subresource the request does not ask for
        elif not shape.sub and shape.siblings & req.terms:
            score -= W_SUB  # the request asks for a subresource this object has, and this is not it
    return score


def rerank(
    query: str,
    ranked: Sequence[tuple[int, float]],
    shapes: Sequence[Shape | None],
    kinds: Kinds | None = None,
    added: int = 0,
    request: Request | None = None,
) -> list[tuple[int, float]]:
    """`ranked` (tool index, score), best first: the first DEPTH reordered by their score rescaled
    to 0..1 plus WEIGHT x `agreement` (never positive); the rest follow in their order (so a shorter
    limit gives a prefix of a longer one)."""
    if not ranked or not WEIGHT:
        return list(ranked)
    head, tail = ranked[:DEPTH], ranked[DEPTH:]
    high, low = head[0][1], head[-1][1]
    head, tail = list(ranked[: DEPTH + added]), ranked[DEPTH + added :]
    spread = (high - low) or 1.0
    request = request or parse_request(query, kinds)
    # (a candidate added below the ranking's DEPTH, `with_named_kinds`, rescales to 0 at most)
    scored = [(i, max(0.0, 1 - (high - s) / spread) + WEIGHT * agreement(request, shapes[i])) for i, s in head]
    scored.sort(key=lambda item: -item[1])  # stable: ties keep the ranking's order
    # Reported scores: 0..1, relative to this request's candidates, never rising down the list.
    return [(i, max(0.0, s)) for i, s in scored] + [(i, 0.0) for i, _ in tail]
