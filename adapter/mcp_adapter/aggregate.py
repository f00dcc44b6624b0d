"""Aggregation core: many named sources behind one MCP surface.

Stable interface (the gateway imports it):

    agg = Aggregator(sources, separator="__", page_size=100, policy=..., interceptor=...)
    await agg.start(task_group)          # connect sources in the background
    await agg.refresh(strict=True)       # build the merged catalog (NameCollision if unresolvable)
    await agg.list_tools(cursor, policy=None) -> ListToolsResult   (same for resources, templates, prompts)
    await agg.call_tool(params, downstream, policy=None) -> CallToolResult | InputRequiredResult
    await agg.read_resource / get_prompt / complete / subscribe / unsubscribe / set_level
    agg.map() -> JSON-able dict of which source serves what (no secrets)
    await agg.stop()

Hooks:
- `AccessPolicy` (`allows_tool(name)`, `allows_resource(uri)`, `allows_prompt(name)`, on exposed
  names): hidden items are absent from lists and refused on use with INVALID_PARAMS saying so. Pass
  one per call (`policy=`) for per-profile rules, or set `agg.policy` for a default.
- `Interceptor`: `async def intercept(call: ToolCall, proceed) -> result` wraps every tool call
  (quotas, rate limits, audit, timeouts); `proceed()` performs the upstream call.
- Caller identity: `Downstream.caller` (set by whoever builds the downstream: the server from
  the `X-MCP-Caller` header when trusted, else `CURRENT_CALLER` or the handshake session)
  selects per-caller upstream sessions.

Listing results are cached per source and refreshed on `list_changed`; list
responses are paginated with opaque offset cursors; items keep their upstream
`_meta`. Resource URIs are never rewritten: a read routes to the source that
listed the URI, else to the source whose template matches it.
"""

from __future__ import annotations

import base64
import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import anyio.abc
import mcp_types as types
from mcp.shared.exceptions import MCPError
from mcp_common import tracing

from mcp_adapter.downstream import Downstream
from mcp_adapter.metrics import call_series
from mcp_adapter.naming import NameCollision, SourceNames, exposed_names
from mcp_adapter.sources.base import Source

logger = logging.getLogger(__name__)

RESOURCE_NOT_FOUND = -32002
"""The spec's error code for an unknown resource URI."""

CURRENT_CALLER: ContextVar[str] = ContextVar("mcp_adapter_caller", default="")
"""Caller identity of the request being served, for embedders that know it (the server falls back to it)."""

ToolResult = types.CallToolResult | types.InputRequiredResult
KINDS = ("tools", "resources", "resource_templates", "prompts")


@dataclass(frozen=True)
class ToolCall:
    """One tool call as the interceptor sees it."""

    caller: str
    name: str
    source: str
    upstream_name: str
    arguments: dict[str, Any] | None


class AccessPolicy(Protocol):
    def allows_tool(self, name: str) -> bool: ...

    def allows_resource(self, uri: str) -> bool: ...

    def allows_prompt(self, name: str) -> bool: ...


class AllowAll:
    def allows_tool(self, name: str) -> bool:
        return True

    def allows_resource(self, uri: str) -> bool:
        return True

    def allows_prompt(self, name: str) -> bool:
        return True


Proceed = Callable[[], Awaitable[ToolResult]]
Interceptor = Callable[[ToolCall, Proceed], Awaitable[ToolResult]]
ChangeListener = Callable[[str], Awaitable[None]]
UpdateListener = Callable[[str, str, str], Awaitable[None]]


async def _no_intercept(call: ToolCall, proceed: Proceed) -> ToolResult:
    return await proceed()


@dataclass
class Catalog:
    tools: dict[str, tuple[str, types.Tool]] = field(default_factory=dict)
    prompts: dict[str, tuple[str, types.Prompt]] = field(default_factory=dict)
    resources: dict[str, tuple[str, types.Resource]] = field(default_factory=dict)
    templates: list[tuple[str, types.ResourceTemplate]] = field(default_factory=list)
    tool_routes: dict[str, tuple[str, str]] = field(default_factory=dict)
    prompt_routes: dict[str, tuple[str, str]] = field(default_factory=dict)


class UnknownToolError(MCPError):
    """A tools/call naming no tool this endpoint offers (an INVALID_PARAMS protocol error)."""


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def _decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        if text.startswith("o:") and int(text[2:]) >= 0:
            return int(text[2:])
    except (ValueError, UnicodeDecodeError):
        pass
    raise MCPError(code=types.INVALID_PARAMS, message="invalid or expired cursor; list again from the start")


@functools.lru_cache(maxsize=4096)
def template_regex(template: str) -> re.Pattern[str]:
    """A matcher for an RFC 6570 URI template: `{x}` matches one segment, `{+x}`/`{#x}` anything."""
    out = ""
    for literal, expr in re.findall(r"([^{]*)(\{[^}]*\})?", template):
        out += re.escape(literal)
        if expr:
            out += ".+" if expr[1:2] in ("+", "#") else "[^/?#]+" if expr[1:2] not in ("?", "&") else ".*"
    return re.compile(f"^{out}$")


class Aggregator:
    def __init__(
        self,
        sources: Sequence[Source],
        *,
        separator: str = "__",
        page_size: int = 100,
        max_page_bytes: int = 512 * 1024,
        policy: AccessPolicy | None = None,
        interceptor: Interceptor | None = None,
    ) -> None:
        self.sources: dict[str, Source] = {s.name: s for s in sources}
        self.separator = separator
        self.page_size = page_size
        self.max_page_bytes = max_page_bytes
        self.policy: AccessPolicy = policy or AllowAll()
        self.interceptor: Interceptor = interceptor or _no_intercept
        self.catalog = Catalog()
        self._snap: dict[str, dict[str, list[Any]]] = {}
        self._change_listeners: list[ChangeListener] = []
        self._update_listeners: list[UpdateListener] = []
        self._tg: anyio.abc.TaskGroup | None = None
        self._refresh_lock = anyio.Lock()
        self._sizes: dict[int, int] = {}  # serialized size of each catalog item, for page byte bounds

    # -- lifecycle ---------------------------------------------------------

    async def start(self, tg: anyio.abc.TaskGroup) -> None:
        self._tg = tg
        for source in self.sources.values():
            await source.start(tg)

    async def wait_ready(self, within: float) -> None:
        with anyio.move_on_after(within):
            async with anyio.create_task_group() as tg:
                for source in self.sources.values():
                    tg.start_soon(source.wait_ready, within)

    async def stop(self) -> None:
        async with anyio.create_task_group() as tg:
            for source in self.sources.values():
                tg.start_soon(source.stop)

    async def add_source(self, source: Source, *, strict: bool = False) -> None:
        """Add (or replace) a source at runtime, e.g. on config reload."""
        assert self._tg is not None
        old = self.sources.get(source.name)
        self.sources[source.name] = source
        if old is not None:
            await old.stop()
        await source.start(self._tg)
        await source.wait_ready(10)
        await self.refresh_source(source.name, strict=strict)

    async def remove_source(self, name: str) -> None:
        source = self.sources.pop(name, None)
        self._snap.pop(name, None)
        if source is not None:
            await source.stop()
        await self._rebuild(strict=False)
        await self._changed("tools", "resources", "prompts")

    def ready(self) -> dict[str, bool]:
        return {name: s.is_ready() for name, s in self.sources.items()}

    # -- catalog -------------------------------------------------------------

    def on_change(self, listener: ChangeListener) -> None:
        """`listener(kind)` runs when the merged tools/resources/prompts list changed."""
        self._change_listeners.append(listener)

    def on_resource_updated(self, listener: UpdateListener) -> None:
        """`listener(source, caller, uri)` runs on an upstream `notifications/resources/updated`."""
        self._update_listeners.append(listener)

    async def source_changed(self, source: str, kind: str) -> None:
        """Sources call this on upstream `list_changed`."""
        await self.refresh_source(source, kinds=(kind, "resource_templates") if kind == "resources" else (kind,))

    async def resource_updated(self, source: str, caller: str, uri: str) -> None:
        for listener in self._update_listeners:
            await listener(source, caller, uri)

    async def refresh(self, *, strict: bool = False) -> None:
        """Re-list every source and rebuild the catalog."""
        for name in list(self.sources):
            await self._snapshot(name, KINDS)
        await self._rebuild(strict=strict)

    async def refresh_source(self, name: str, kinds: Sequence[str] = KINDS, *, strict: bool = False) -> None:
        await self._snapshot(name, kinds)
        await self._rebuild(strict=strict)
        await self._changed(*kinds)

    async def _snapshot(self, name: str, kinds: Sequence[str]) -> None:
        source = self.sources.get(name)
        if source is None:
            return
        listers: dict[str, Callable[[], Awaitable[Sequence[Any]]]] = {
            "tools": source.list_tools,
            "resources": source.list_resources,
            "resource_templates": source.list_resource_templates,
            "prompts": source.list_prompts,
        }
        snap = self._snap.setdefault(name, {k: [] for k in KINDS})
        for kind in kinds:
            try:
                snap[kind] = list(await listers[kind]())
            except Exception as exc:
                # Keep the last good listing: a flapping source should not erase its tools.
                logger.warning("listing %s failed: %s", kind, exc, extra={"source": name})

    async def _rebuild(self, *, strict: bool) -> None:
        async with self._refresh_lock:
            try:
                self.catalog = self._merge()
                self._sizes = {}  # keyed by item identity: the old items are gone
            except NameCollision as exc:
                if strict:
                    raise
                logger.error("catalog not updated: %s", exc)

    def _merge(self) -> Catalog:
        order = [n for n in self.sources if n in self._snap]

        def names(kind: str) -> list[SourceNames]:
            return [
                SourceNames(
                    n,
                    self.sources[n].config.effective_prefix,
                    self.sources[n].config.prefix_policy,
                    [item.name for item in self._snap[n][kind]],
                )
                for n in order
            ]

        catalog = Catalog()
        tool_table = catalog.tool_routes = exposed_names(names("tools"), self.separator, "tool")
        by_source_tool = {(n, t.name): t for n in order for t in self._snap[n]["tools"]}
        for exposed, (src, upstream) in tool_table.items():
            tool = by_source_tool[(src, upstream)]
            catalog.tools[exposed] = (src, tool.model_copy(update={"name": exposed}))
        prompt_table = catalog.prompt_routes = exposed_names(names("prompts"), self.separator, "prompt")
        by_source_prompt = {(n, p.name): p for n in order for p in self._snap[n]["prompts"]}
        for exposed, (src, upstream) in prompt_table.items():
            prompt = by_source_prompt[(src, upstream)]
            catalog.prompts[exposed] = (src, prompt.model_copy(update={"name": exposed}))
        for n in order:
            for res in self._snap[n]["resources"]:
                if res.uri in catalog.resources and catalog.resources[res.uri][0] != n:
                    other = catalog.resources[res.uri][0]
                    logger.warning("resource %s is offered by %r and %r; %r serves it", res.uri, other, n, other)
                    continue
                catalog.resources.setdefault(res.uri, (n, res))
            catalog.templates += [(n, t) for t in self._snap[n]["resource_templates"]]
        return catalog

    async def _changed(self, *kinds: str) -> None:
        for kind in {"resources" if k == "resource_templates" else k for k in kinds}:
            for listener in self._change_listeners:
                try:
                    await listener(kind)
                except Exception:
                    logger.exception("list_changed listener failed")

    # -- listing ---------------------------------------------------------------

    def _page(self, items: list[Any], cursor: str | None) -> tuple[list[Any], str | None]:
        """One page: at most `page_size` items and about `max_page_bytes` (clients cap SSE events at 1 MiB)."""
        start = _decode_cursor(cursor)
        end, size = start, 0
        sizes = self._sizes
        while end < len(items) and end - start < self.page_size:
            item = items[end]
            if (item_size := sizes.get(id(item))) is None:
                item_size = sizes[id(item)] = len(item.model_dump_json(by_alias=True, exclude_none=True))
            size += item_size
            if size > self.max_page_bytes and end > start:
                break
            end += 1
        return items[start:end], (_encode_cursor(end) if end < len(items) else None)

    async def list_tools(self, cursor: str | None = None, policy: AccessPolicy | None = None) -> types.ListToolsResult:
        policy = policy or self.policy
        items = [tool for name, (_, tool) in self.catalog.tools.items() if policy.allows_tool(name)]
        page, nxt = self._page(items, cursor)
        return types.ListToolsResult(tools=page, next_cursor=nxt)

    async def list_prompts(
        self, cursor: str | None = None, policy: AccessPolicy | None = None
    ) -> types.ListPromptsResult:
        policy = policy or self.policy
        items = [p for name, (_, p) in self.catalog.prompts.items() if policy.allows_prompt(name)]
        page, nxt = self._page(items, cursor)
        return types.ListPromptsResult(prompts=page, next_cursor=nxt)

    async def list_resources(
        self, cursor: str | None = None, policy: AccessPolicy | None = None
    ) -> types.ListResourcesResult:
        policy = policy or self.policy
        items = [r for uri, (_, r) in self.catalog.resources.items() if policy.allows_resource(uri)]
        page, nxt = self._page(items, cursor)
        return types.ListResourcesResult(resources=page, next_cursor=nxt)

    async def list_resource_templates(
        self, cursor: str | None = None, policy: AccessPolicy | None = None
    ) -> types.ListResourceTemplatesResult:
        policy = policy or self.policy
        items = [t for _, t in self.catalog.templates if policy.allows_resource(t.uri_template)]
        page, nxt = self._page(items, cursor)
        return types.ListResourceTemplatesResult(resource_templates=page, next_cursor=nxt)

    # -- routing ---------------------------------------------------------------

    def route_tool(self, name: str, policy: AccessPolicy | None = None) -> tuple[Source, str]:
        policy = policy or self.policy
        entry = self.catalog.tools.get(name)
        if entry is None or not policy.allows_tool(name):
            hidden = entry is not None
            raise UnknownToolError(
                code=types.INVALID_PARAMS,
                message=f"tool {name!r} is not available on this endpoint"
                + (" (hidden by access policy)" if hidden else "; list tools to see the available names"),
            )
        source_name, upstream = self.catalog.tool_routes[name]
        return self.sources[source_name], upstream

    def refuse_hidden_resource(self, uri: str, policy: AccessPolicy | None = None) -> None:
        """Raise the refusal of a read when the access policy hides `uri`."""
        if not (policy or self.policy).allows_resource(uri):
            raise MCPError(code=types.INVALID_PARAMS, message=f"resource {uri!r} is hidden by access policy")

    def route_resource(self, uri: str, policy: AccessPolicy | None = None) -> Source:
        policy = policy or self.policy
        self.refuse_hidden_resource(uri, policy)
        if uri in self.catalog.resources:
            return self.sources[self.catalog.resources[uri][0]]
        for source_name, template in self.catalog.templates:
            if template_regex(template.uri_template).match(uri) and policy.allows_resource(template.uri_template):
                return self.sources[source_name]
        raise MCPError(code=RESOURCE_NOT_FOUND, message=f"no source serves resource {uri!r}")

    def route_prompt(self, name: str, policy: AccessPolicy | None = None) -> tuple[Source, str]:
        policy = policy or self.policy
        entry = self.catalog.prompts.get(name)
        if entry is None or not policy.allows_prompt(name):
            raise MCPError(
                code=types.INVALID_PARAMS,
                message=f"prompt {name!r} is not available on this endpoint"
                + (" (hidden by access policy)" if entry else "; list prompts to see the available names"),
            )
        source_name, upstream = self.catalog.prompt_routes[name]
        return self.sources[source_name], upstream

    # -- operations --------------------------------------------------------------

    async def call_tool(
        self, params: types.CallToolRequestParams, downstream: Downstream, policy: AccessPolicy | None = None
    ) -> ToolResult:
        source, upstream = self.route_tool(params.name, policy)
        call = ToolCall(downstream.caller, params.name, source.name, upstream, params.arguments)
        upstream_params = params if upstream == params.name else params.model_copy(update={"name": upstream})

        async def proceed() -> ToolResult:
            work = measured(source.name, "tools/call", params.name, source.call_tool(upstream_params, downstream))
            if not tracing.enabled():
                return await work
            attributes = {tracing.METHOD: "tools/call", tracing.TOOL: upstream, tracing.UPSTREAM: source.name}
            with tracing.child_span(f"tools/call {upstream}", client=True, **attributes):
                result = await work
                if isinstance(result, types.CallToolResult) and result.is_error:
                    tracing.refused("tool_error", "the tool reported an error")
                return result

        return await self.interceptor(call, proceed)

    async def read_resource(
        self, params: types.ReadResourceRequestParams, downstream: Downstream, policy: AccessPolicy | None = None
    ) -> types.ReadResourceResult | types.InputRequiredResult:
        source = self.route_resource(params.uri, policy)
        return await measured(source.name, "resources/read", "", source.read_resource(params, downstream))

    async def get_prompt(
        self, params: types.GetPromptRequestParams, downstream: Downstream, policy: AccessPolicy | None = None
    ) -> types.GetPromptResult | types.InputRequiredResult:
        source, upstream = self.route_prompt(params.name, policy)
        upstream_params = params if upstream == params.name else params.model_copy(update={"name": upstream})
        return await measured(source.name, "prompts/get", params.name, source.get_prompt(upstream_params, downstream))

    async def complete(
        self, params: types.CompleteRequestParams, downstream: Downstream, policy: AccessPolicy | None = None
    ) -> types.CompleteResult:
        ref = params.ref
        if isinstance(ref, types.PromptReference):
            source, upstream = self.route_prompt(ref.name, policy)
            params = params.model_copy(update={"ref": ref.model_copy(update={"name": upstream})})
        else:
            source = self._template_source(ref.uri, policy)
        return await measured(source.name, "completion/complete", "", source.complete(params, downstream))

    def _template_source(self, uri_template: str, policy: AccessPolicy | None) -> Source:
        for source_name, template in self.catalog.templates:
            if template.uri_template == uri_template:
                if not (policy or self.policy).allows_resource(uri_template):
                    break
                return self.sources[source_name]
        return self.route_resource(uri_template, policy)

    async def subscribe(self, uri: str, downstream: Downstream, policy: AccessPolicy | None = None) -> str:
        """Subscribe upstream; returns the serving source's name."""
        source = self.route_resource(uri, policy)
        await source.subscribe(uri, downstream)
        return source.name

    async def unsubscribe(self, uri: str, downstream: Downstream, policy: AccessPolicy | None = None) -> None:
        source = self.route_resource(uri, policy)
        await source.unsubscribe(uri, downstream)

    async def set_level(self, level: types.LoggingLevel, downstream: Downstream) -> None:
        async with anyio.create_task_group() as tg:
            for source in self.sources.values():
                tg.start_soon(_quietly, source.set_level(level, downstream))

    def capabilities(self) -> dict[str, bool]:
        caps = [s.capabilities() for s in self.sources.values()]
        return {
            "resources": any(c.resources for c in caps),
            "prompts": any(c.prompts for c in caps),
            "completions": any(c.completions for c in caps),
            "logging": any(c.logging for c in caps),
            "subscribe": any(c.resources and c.resources.subscribe for c in caps),
        }

    def map(self) -> dict[str, Any]:
        """Which source serves which tool/resource/prompt; statuses, never config values."""
        out: dict[str, Any] = {"sources": {}, "tools": {}, "prompts": {}, "resources": {}, "resourceTemplates": {}}
        for name, source in self.sources.items():
            out["sources"][name] = {"type": source.kind, **source.status()}
        for exposed, (src, upstream) in self.catalog.tool_routes.items():
            out["tools"][exposed] = {"source": src, "upstreamName": upstream}
        for exposed, (src, upstream) in self.catalog.prompt_routes.items():
            out["prompts"][exposed] = {"source": src, "upstreamName": upstream}
        for uri, (src, _) in self.catalog.resources.items():
            out["resources"][uri] = {"source": src}
        for src, template in self.catalog.templates:
            out["resourceTemplates"][template.uri_template] = {"source": src}
        return out


async def _quietly(work: Awaitable[Any]) -> None:
    try:
        await work
    except Exception as exc:
        logger.debug("ignored: %s", exc)


async def measured(source: str, op: str, name: str, work: Awaitable[Any]) -> Any:
    """Await `work`, counting the call, its failure (an exception or an `isError` result) and its latency."""
    series = call_series(source, op, name)
    series.calls.inc()
    started = time.perf_counter()
    try:
        result = await work
    except BaseException:
        series.errors.inc()
        raise
    finally:
        series.latency.observe(time.perf_counter() - started)
    if isinstance(result, types.CallToolResult) and result.is_error:
        series.errors.inc()
    return result
