"""Which namespaces the operator serves, and listing custom resources in them.

With plain namespace names (`--namespace team-a`) every list is per namespace,
so the operator needs no cluster-wide read access to Profiles and Upstreams
(the chart then grants namespaced Roles only). With globs (`team-*`) or no
namespaces, lists are cluster-wide and filtered here.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from mcp_operator import naming
from mcp_operator.kube import Kube, collection_path
from mcp_operator.settings import Settings

GLOB_CHARS = frozenset("*?[")


def watched(settings: Settings, namespace: str) -> bool:
    return not settings.namespaces or any(fnmatch.fnmatchcase(namespace, p) for p in settings.namespaces)


def plain_namespaces(settings: Settings) -> list[str] | None:
    """The exact namespaces served, or None when that takes a cluster-wide list (all, or globs)."""
    if not settings.namespaces or any(GLOB_CHARS & set(n) for n in settings.namespaces):
        return None
    return sorted(set(settings.namespaces))


async def list_watched(kube: Kube, settings: Settings, plural: str) -> list[dict[str, Any]]:
    """Every namespaced custom resource `plural` in the served namespaces."""
    exact = plain_namespaces(settings)
    if exact is None:
        items = await kube.list(collection_path(naming.API_VERSION, plural, None))
        return [i for i in items if watched(settings, i["metadata"]["namespace"])]
    found: list[dict[str, Any]] = []
    for namespace in exact:
        found += await kube.list(collection_path(naming.API_VERSION, plural, namespace))
    return found
