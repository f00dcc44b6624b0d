"""The adapter's naming.py in process: prefix policies, collisions, SEP-986 validity (mutation-tested)."""

from __future__ import annotations

import pytest
from mcp_adapter.config import MAX_NAME_LEN
from mcp_adapter.naming import NameCollision, SourceNames, exposed_names


def test_policies_always_never_and_auto() -> None:
    table = exposed_names(
        [
            SourceNames("a", "pa", "always", ["x", "only_a"]),
            SourceNames("b", "pb", "auto", ["x", "only_b", "only_b"]),
            SourceNames("c", "pc", "never", ["y"]),
        ],
        "__",
    )
    assert table == {
        "pa__x": ("a", "x"),
        "pa__only_a": ("a", "only_a"),
        "pb__x": ("b", "x"),  # shared with a: auto prefixes it
        "only_b": ("b", "only_b"),  # listed twice by one source: not shared
        "y": ("c", "y"),
    }


def test_the_separator_is_used_as_given() -> None:
    assert exposed_names([SourceNames("a", "p", "always", ["t"])], "-") == {"p-t": ("a", "t")}


def test_an_unresolved_clash_names_both_sources() -> None:
    with pytest.raises(NameCollision) as clash:
        exposed_names(
            [SourceNames("one", "p1", "never", ["x"]), SourceNames("two", "p2", "never", ["x"])], "__", "prompt"
        )
    message = str(clash.value)
    assert "prompt name 'x'" in message and "'one'" in message and "'two'" in message
    # auto on one side resolves it: the auto source is prefixed, the never one keeps the name.
    table = exposed_names([SourceNames("one", "p1", "never", ["x"]), SourceNames("two", "p2", "auto", ["x"])], "__")
    assert table == {"x": ("one", "x"), "p2__x": ("two", "x")}


def test_resulting_names_must_be_valid() -> None:
    longest = "n" * MAX_NAME_LEN
    assert longest in exposed_names([SourceNames("a", "p", "never", [longest])], "__")
    with pytest.raises(NameCollision, match="not a valid MCP name"):
        exposed_names([SourceNames("a", "p", "never", [longest + "n"])], "__")
    with pytest.raises(NameCollision, match="source 'a': tool name 'p__x y'"):
        exposed_names([SourceNames("a", "p", "always", ["x y"])], "__")
