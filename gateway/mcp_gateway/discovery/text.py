"""Turning tool names and free text into search terms: splitting, stop words, stemming, synonyms.

Tool names carry most of the signal (`readCoreV1NamespacedPodLog`, `git_diff_staged`,
`github__create_issue`), so they are split at `_`, `-`, `.`, `/`, `__` prefixes and camelCase
humps. The stemmer is deliberately small (plural and verb endings only): aggressive stemming
merges unrelated API words ("policy"/"police"), and tool vocabularies are short.
"""

from __future__ import annotations

import re
from functools import lru_cache

_WORD = re.compile(r"[A-Za-z]+|[0-9]+")
# camelCase / PascalCase humps, keeping acronyms together: "APIResources" -> "API", "Resources".
_HUMP = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")

_STOP = """a an and are as at be by can do does for from has have i in into is it its me my of on or our
    please so some that the their them then there these this those to us was we what when where which
    who will with would you your want need like just could should tell give let any"""
STOP_WORDS = frozenset(_STOP.split())

# Verb and noun groups a user and a tool author may word differently. A query word also
# matches the other members of its group, at a lower weight (index.py).
SYNONYM_GROUPS: tuple[tuple[str, ...], ...] = (
    ("get", "read", "fetch", "retrieve", "show", "view", "obtain", "load", "open", "display", "see", "look"),
    ("get", "read", "detail", "information", "info", "describe", "inspect"),
    ("list", "enumerate", "browse", "show", "index", "exist"),
    ("create", "make", "add", "new", "insert", "generate", "post", "build"),
    ("delete", "remove", "erase", "destroy", "drop", "purge", "wipe", "clear"),
    ("update", "modify", "edit", "change", "patch", "alter", "set", "adjust"),
    ("patch", "label", "annotate", "mark", "cordon", "suspend", "pause", "resume", "rotate", "grow", "resize"),
    ("replace", "overwrite", "put", "swap"),
    ("search", "find", "query", "lookup", "grep", "locate", "match", "filter"),
    ("run", "execute", "invoke", "start", "launch", "trigger", "call"),
    ("stop", "kill", "terminate", "halt", "cancel", "abort"),
    ("write", "save", "store", "persist", "record"),
    ("move", "rename", "relocate"),
    ("copy", "duplicate", "clone"),
    ("send", "notify", "message", "emit"),
    ("log", "logs", "output", "stdout"),
    ("directory", "folder"),
    ("file", "document"),
    ("commit", "checkin"),
    ("branch", "checkout"),
    ("difference", "diff", "compare", "changes"),
    (
        "status",
        "state",
        "health",
        "running",
        "finished",
        "complete",
        "progress",
        "bound",
        "ready",
        "condition",
        "phase",
        "healthy",
    ),
    ("binding", "bind", "grant", "permission", "access", "authorize", "allow"),
    ("watch", "stream", "follow", "subscribe", "monitor"),
    ("echo", "repeat", "parrot"),
    ("secret", "password", "credential", "token"),
    ("config", "configuration", "settings", "configmap"),
    ("namespace", "project"),
    ("all", "every", "everywhere", "across", "wide", "collection"),
    ("add", "sum", "plus"),
    ("size", "scale", "replicas"),
    ("wait", "sleep", "delay"),
    ("image", "picture", "photo"),
)


# Abbreviations users type for compound names: each stands for the compound term (see name_terms).
ABBREVIATIONS: dict[str, str] = {
    "pvc": "persistentvolumeclaim",
    "pv": "persistentvolume",
    "sa": "serviceaccount",
    "cm": "configmap",
    "ns": "namespace",
    "svc": "service",
    "deploy": "deployment",
    "rs": "replicaset",
    "sts": "statefulset",
    "ds": "daemonset",
    "hpa": "horizontalpodautoscaler",
    "crd": "customresourcedefinition",
    "repo": "repository",
    "dir": "directory",
    "env": "environment",
}


@lru_cache(maxsize=65536)  # a catalog's vocabulary is small and repeats: index builds are dominated by this
def stem(word: str) -> str:
    """A light suffix stripper: plurals, -ing, -ed; keeps short words and -ss words as they are."""
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes", "zes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    if word.endswith("ing") and len(word) > 5:
        return _undouble(word[:-3])
    if word.endswith("ed") and len(word) > 4:
        # "namespaced" -> "namespace", "used" -> "use", but "stopped" -> "stop", "listed" -> "list".
        return word[:-1] if word.endswith(("ced", "sed", "ged", "ved", "zed", "ated")) else _undouble(word[:-2])
    return word


def _undouble(word: str) -> str:
    if len(word) > 2 and word[-1] == word[-2] and word[-1] not in "lsz":
        return word[:-1]
    return word


def split_words(text: str) -> list[str]:
    """Words of a name or sentence, camelCase split and lowercased."""
    words: list[str] = []
    for chunk in _WORD.findall(text):
        if chunk.isdigit() or chunk.islower() or chunk.isupper():
            words.append(chunk.lower())
        else:
            words.extend(_humps(chunk))
    return words


@lru_cache(maxsize=65536)
def _humps(chunk: str) -> tuple[str, ...]:
    return tuple(hump.lower() for hump in _HUMP.findall(chunk))


def terms(text: str) -> list[str]:
    """Search terms of a text: split, stop words dropped, stemmed (the same for documents and queries)."""
    return [stem(w) for w in split_words(text) if w not in STOP_WORDS]


HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch"})


def name_terms(name: str) -> list[str]:
    """Terms of a tool name, plus its adjacent words joined: `StatefulSet` also yields `statefulset`,
    `PersistentVolumeClaim` `persistentvolumeclaim`, since users write such names as one word.
    A connect operation's HTTP method (`connectCoreV1GetNamespacedPodExec`) is how the tool is
    called, not what it does: "get the pod's details" is not a request for its exec stream."""
    every = split_words(name)
    if every and every[0] == "connect":
        every = [w for w in every if w not in HTTP_METHODS]
    words = [w for w in every if not w.isdigit()]
    joined = [stem("".join(words[i : i + n])) for n in (2, 3) for i in range(len(words) - n + 1)]
    return [stem(w) for w in every if w not in STOP_WORDS] + joined


def query_terms(text: str) -> list[str]:
    """A query's terms, abbreviations also standing for the compound term they abbreviate."""
    out: list[str] = []
    for word in split_words(text):
        full = ABBREVIATIONS.get(word) or ABBREVIATIONS.get(stem(word))  # "pvc", "pvcs"
        if full:
            out.append(full)
        if word not in STOP_WORDS:
            out.append(stem(word))
    return out


def _synonym_table() -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = {}
    for group in SYNONYM_GROUPS:
        stems = {stem(w) for w in group}
        for member in stems:
            table.setdefault(member, set()).update(stems - {member})
    return {word: frozenset(others) for word, others in table.items()}


SYNONYMS = _synonym_table()
