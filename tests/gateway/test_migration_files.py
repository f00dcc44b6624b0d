"""Packaged schema migrations: one file per version, numbered without gaps.

Parallel branches each adding "the next" migration is the usual way this breaks; a gateway
would then stop at start-up on a primary-key violation in `schema_migrations`.
"""

from __future__ import annotations

import pytest
from mcp_gateway.store.migrate import _refuse_shared_versions, migration_files


def test_packaged_migrations_are_numbered_once_each_without_gaps() -> None:
    versions = [version for version, _, _ in migration_files()]
    assert versions == list(range(1, len(versions) + 1))


def test_two_files_with_one_version_are_named_in_the_error() -> None:
    found = [(11, "key_labels", ""), (11, "upstream_connections", "")]
    with pytest.raises(RuntimeError, match="0011_key_labels and 0011_upstream_connections share a version"):
        _refuse_shared_versions(found)
