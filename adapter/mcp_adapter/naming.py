"""Exposed names for tools and prompts merged from several sources.

Prefixing is `{prefix}{separator}{name}`. The default separator is `__`:
SEP-986 allows only `[A-Za-z0-9._-]` (so `:` or `/` are out), and many LLM
tool-calling APIs further reject `.`, leaving `_` and `-`; both occur inside
ordinary tool names, so a doubled underscore keeps the boundary readable.
Routing never parses names back apart: it looks the exposed name up in a
table, so an ambiguous-looking name still routes exactly.

Policy per source (deterministic, independent of upstream listing order):
- `always`: every item is prefixed.
- `never`: items keep their upstream names.
- `auto`: items are prefixed only when another source offers the same name.
A clash that the policies leave standing (e.g. two `never` sources offering
the same name) raises `NameCollision` naming both sources - never a silent
rename or drop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mcp_adapter.config import MAX_NAME_LEN, NAME_CHARS


class NameCollision(Exception):
    """Two sources would expose the same name; the message names both."""


@dataclass(frozen=True)
class SourceNames:
    """The names one source offers, with its naming settings."""

    source: str
    prefix: str
    policy: str  # always | auto | never
    names: Sequence[str]


def exposed_names(sources: Sequence[SourceNames], separator: str, kind: str = "tool") -> dict[str, tuple[str, str]]:
    """Map every exposed name to `(source, upstream name)`.

    Raises:
        NameCollision: a clash the policies cannot resolve, or a resulting name
            that is not SEP-986 valid.
    """
    offered: dict[str, list[str]] = {}
    for src in sources:
        for name in dict.fromkeys(src.names):
            offered.setdefault(name, []).append(src.source)

    table: dict[str, tuple[str, str]] = {}
    for src in sources:
        for name in dict.fromkeys(src.names):
            shared = len(offered[name]) > 1
            prefixed = src.policy == "always" or (src.policy == "auto" and shared)
            exposed = f"{src.prefix}{separator}{name}" if prefixed else name
            if len(exposed) > MAX_NAME_LEN or not NAME_CHARS.match(exposed):
                raise NameCollision(
                    f"source {src.source!r}: {kind} name {exposed!r} is not a valid MCP name "
                    f"(SEP-986: at most {MAX_NAME_LEN} of [A-Za-z0-9._-]); shorten the source prefix "
                    "or set prefixPolicy: never"
                )
            if exposed in table:
                other = table[exposed][0]
                raise NameCollision(
                    f"{kind} name {exposed!r} is offered by both source {other!r} and source {src.source!r}; "
                    f"set prefixPolicy to 'auto' or 'always' on one of them, or give them distinct prefixes"
                )
            table[exposed] = (src.source, name)
    return table
