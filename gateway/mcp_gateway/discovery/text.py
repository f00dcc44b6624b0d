"""Turning tool names and free text into search terms: splitting, stop words, stemming, synonyms.

Tool names carry most of the signal (`readCoreV1NamespacedPodLog`, `git_diff_staged`,
`github__create_issue`), so they are split at `_`, `-`, `.`, `/`, `__` prefixes and camelCase
humps. The stemmer is deliberately small (plural and verb endings only): aggressive stemming
merges unrelated API words ("policy"/"police"), and tool vocabularies are short.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-z]+|[0-9]+")
# camelCase / PascalCase humps, keeping acronyms together: "APIResources" -> "API", "Resources".
_HUMP = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")

_STOP = """a an and are as at be by can do does for from has have i in into is it its me my of on or our
    please so some that the their them then there these this those to us was we what when where which
    who will with would you your want need like just could should tell give let all any"""
STOP_WORDS = frozenset(_STOP.split())

# Verb and noun groups a user and a tool author may word differently. A query word also
# matches the other members of its group, at a lower weight (index.py).
SYNONYM_GROUPS: tuple[tuple[str, ...], ...] = (
    ("get", "read", "fetch", "retrieve", "show", "view", "obtain", "load", "open", "display", "see", "look"),
    ("list", "enumerate", "browse", "ls", "index"),
    ("create", "make", "add", "new", "insert", "generate", "post", "build"),
    ("delete", "remove", "erase", "destroy", "drop", "rm", "purge", "wipe", "clear"),
    ("update", "modify", "edit", "change", "patch", "alter", "set", "adjust"),
    ("replace", "overwrite", "put", "swap"),
    ("search", "find", "query", "lookup", "grep", "locate", "match", "filter"),
    ("run", "execute", "invoke", "start", "launch", "trigger", "call"),
    ("stop", "kill", "terminate", "halt", "cancel", "abort"),
    ("write", "save", "store", "persist", "record"),
    ("move", "rename", "mv", "relocate"),
    ("copy", "duplicate", "clone", "cp"),
    ("send", "notify", "message", "emit"),
    ("log", "logs", "output", "stdout"),
    ("directory", "folder", "dir"),
    ("file", "document"),
    ("commit", "checkin"),
    ("branch", "checkout"),
    ("difference", "diff", "compare", "changes"),
    ("status", "state", "health"),
    ("secret", "password", "credential", "token"),
    ("config", "configuration", "settings", "configmap"),
    ("namespace", "project"),
    ("container", "pod"),
    ("add", "sum", "plus"),
    ("size", "scale", "replicas"),
    ("wait", "sleep", "delay"),
    ("image", "picture", "photo"),
)


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
        return _undouble(word[:-2])
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
            words.extend(hump.lower() for hump in _HUMP.findall(chunk))
    return words


def terms(text: str) -> list[str]:
    """Search terms of a text: split, stop words dropped, stemmed (the same for documents and queries)."""
    return [stem(w) for w in split_words(text) if w not in STOP_WORDS]


def _synonym_table() -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = {}
    for group in SYNONYM_GROUPS:
        stems = {stem(w) for w in group}
        for member in stems:
            table.setdefault(member, set()).update(stems - {member})
    return {word: frozenset(others) for word, others in table.items()}


SYNONYMS = _synonym_table()
