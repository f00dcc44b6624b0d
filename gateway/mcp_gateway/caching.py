"""`ttlMs`/`cacheScope` of a profile's list results, from its upstreams' own hints.

Each upstream says how long its lists stay fresh and whether they may be shared
(`HintedMcpSource` remembers what the last listing said, per list kind). A
profile's list merges all its upstreams, so it is fresh only as long as the
least fresh of them: `ttlMs` is the minimum over the upstreams that gave one,
capped by `gateway.maxListTtlMs` (upstreams without a hint add no constraint).

`cacheScope` is `public` only when the result cannot depend on the caller: the
profile is anonymous (`auth.mode: none`) and every upstream marked its list
public. Otherwise (API keys, OIDC: the list is what *this* authorized caller
may see) it is `private`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from mcp.server.caching import CacheHint
from mcp_adapter.sources.mcp_source import McpSource

from mcp_gateway.config import Profile

LIST_KINDS = {
    "tools/list": "tools",
    "resources/list": "resources",
    "resources/templates/list": "resource_templates",
    "prompts/list": "prompts",
}


@dataclass(frozen=True)
class UpstreamHint:
    ttl_ms: int | None
    scope: Literal["public", "private"] | None


class HintedMcpSource(McpSource):
    """An upstream MCP source that remembers the cache hints of its last listing of each kind."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hints: dict[str, UpstreamHint] = {}

    async def _paged(self, method: Any, attr: str, what: str) -> list[Any]:
        pages: list[Any] = []

        async def recording(session: Any, params: Any) -> Any:
            page = await method(session, params)
            pages.append(page)
            return page

        items = await super()._paged(recording, attr, what)
        self.hints[attr] = merge_pages(pages)
        return items


def merge_pages(pages: Iterable[Any]) -> UpstreamHint:
    """One hint for a multi-page listing: the shortest ttl, private if any page is."""
    ttls = [p.ttl_ms for p in pages if getattr(p, "ttl_ms", None) is not None]
    scopes = {getattr(p, "cache_scope", None) for p in pages}
    scope: Literal["public", "private"] | None = (
        "private" if "private" in scopes else "public" if scopes == {"public"} else None
    )
    return UpstreamHint(min(ttls) if ttls else None, scope)


def list_hint(profile: Profile | None, hints: Iterable[UpstreamHint | None], cap_ms: int) -> CacheHint:
    """The profile's hint for one list kind, from what each upstream said (None: said nothing)."""
    listed = [h for h in hints if h is not None]  # an upstream not listed (yet) adds nothing to the result
    ttl = min([cap_ms, *(h.ttl_ms for h in listed if h.ttl_ms is not None)])
    # Policy rules may judge anything about the caller (even anonymous callers' scopes): private lists.
    anonymous = profile is not None and profile.auth.anonymous and not profile.policy.rules
    public = anonymous and bool(listed) and all(h.scope == "public" for h in listed)
    return CacheHint(ttl_ms=max(0, ttl), scope="public" if public else "private")


class LiveCacheHints(dict[str, CacheHint]):
    """`Server.cache_hints` computed when a result is serialized, so it reflects the current upstream
    listings and routing config (the SDK's runner only calls `.get(method)`)."""

    def __init__(self, compute: Callable[[str], CacheHint | None]) -> None:
        super().__init__()
        self._compute = compute

    def get(self, method: str, default: Any = None) -> Any:
        hint = self._compute(method)
        return default if hint is None else hint
