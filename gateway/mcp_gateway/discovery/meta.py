"""The meta-tools a profile in discovery mode `search` lists instead of its whole catalog.

- `search_tools`: ranked names and short descriptions for a task (index.py), policy-filtered.
- `describe_tools`: full definitions (input schemas) of named tools.
- `call_tool`: calls a tool by name. The front rewrites it into a plain `tools/call` of the inner
  tool *before* admission, so policy, rate limits, quotas, timeouts, audit and metrics are exactly
  those of a direct call (audit and metrics record the inner name).

Everything is answered per request from the signed session / stateless request alone: no
server-side session, so both protocol eras behave the same.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

import anyio
import anyio.to_thread

from mcp_gateway.config import Discovery
from mcp_gateway.discovery import semantic
from mcp_gateway.discovery.index import MAX_RESULTS, QueryError, Ranker, ToolDoc, ToolIndex

log = logging.getLogger("mcp_gateway.discovery")

SEARCH_TOOLS = "search_tools"
DESCRIBE_TOOLS = "describe_tools"
CALL_TOOL = "call_tool"
META_NAMES = frozenset({SEARCH_TOOLS, DESCRIBE_TOOLS, CALL_TOOL})
MAX_DESCRIBE = 20
SNIPPET_CHARS = 240


def meta_tool_definitions(discovery: Discovery) -> list[dict[str, Any]]:
    """The three meta-tools as MCP tool definitions, written for a model to read."""
    limit = discovery.max_results
    return [
        {
            "name": SEARCH_TOOLS,
            "title": "Search tools",
            "description": (
                "Find tools for a task among this server's tools (most are not listed directly). "
                "Describe the task in plain words, e.g. 'list pods in a namespace' or 'show the git log'. "
                "Returns tool names with short descriptions and parameter names, best first. "
                f"Then call `{DESCRIBE_TOOLS}` for a tool's full input schema, and `{CALL_TOOL}` to run it."
            ),
            "inputSchema": {
                "type": "object",
                "properties": {
                    "query": {
                        "type": "string",
                        "description": "What you want to do, in a few words.",
                        "maxLength": 1000,
                    },
                    "limit": {
                        "type": "integer",
                        "description": f"How many tools to return (1-{limit}, default {limit}).",
                        "minimum": 1,
                        "maximum": limit,
                    },
                },
                "required": ["query"],
                "additionalProperties": False,
            },
            "annotations": {"readOnlyHint": True, "openWorldHint": False},
        },
        {
            "name": DESCRIBE_TOOLS,
            "title": "Describe tools",
            "description": (
                "Get the full definitions (description and JSON input schema) of tools found with "
                f"`{SEARCH_TOOLS}`, so you can build valid arguments for `{CALL_TOOL}`."
            ),
            "inputSchema": {
                "type": "object",
                "properties": {
                    "names": {
                        "type": "array",
                        "items": {"type": "string"},
                        "minItems": 1,
                        "maxItems": MAX_DESCRIBE,
                        "description": "Exact tool names, as returned by search_tools.",
                    }
                },
                "required": ["names"],
                "additionalProperties": False,
            },
            "annotations": {"readOnlyHint": True, "openWorldHint": False},
        },
        {
            "name": CALL_TOOL,
            "title": "Call a tool",
            "description": (
                f"Run a tool found with `{SEARCH_TOOLS}`. Pass its exact name and its arguments as an object "
                f"matching the input schema from `{DESCRIBE_TOOLS}`. Returns that tool's own result."
            ),
            "inputSchema": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "Exact name of the tool to run."},
                    "arguments": {"type": "object", "description": "The tool's arguments.", "default": {}},
                },
                "required": ["name"],
                "additionalProperties": False,
            },
        },
    ]


class DiscoveryError(ValueError):
    """Bad meta-tool input; answered as a JSON-RPC invalid-params error with this message."""


@dataclass
class CatalogIndex:
    """The index of one catalog version (the aggregator replaces its catalog on every refresh)."""

    catalog: Any
    index: Ranker


class Indexes:
    """One index per profile, rebuilt when the profile's merged catalog changes (upstream list_changed,
    reconnects, routing changes that rebuild the backend).

    A lexical build takes ~0.2 s of CPU at 1,000 tools, so it runs in a worker thread (the event loop
    keeps serving) and one at a time (concurrent searches after a change wait for the same build).
    `ranking: semantic` adds the tools' embeddings (seconds of CPU for a new catalog, then only the
    changed tools): that build runs in its own thread and searches stay lexical until it is done.
    """

    def __init__(self) -> None:
        self._by_profile: dict[str, CatalogIndex] = {}
        self._semantic: dict[str, CatalogIndex] = {}
        self._building: dict[str, Any] = {}  # profile -> the catalog whose semantic build is running
        self._warned: set[str] = set()
        self._lock = anyio.Lock()
        self._table_lock = threading.Lock()  # build threads and the event loop share _semantic/_building

    @staticmethod
    def _current(table: dict[str, CatalogIndex], profile_id: str, catalog: Any) -> Ranker | None:
        cached = table.get(profile_id)
        return cached.index if cached is not None and cached.catalog is catalog else None

    async def of(self, profile_id: str, catalog: Any, ranking: str = "lexical") -> Ranker:
        if ranking == "semantic":
            index = self._current(self._semantic, profile_id, catalog)
            if index is not None:
                return index
        lexical = self._current(self._by_profile, profile_id, catalog)
        if lexical is None:
            async with self._lock:
                lexical = self._current(self._by_profile, profile_id, catalog)
                if lexical is None:
                    lexical = await anyio.to_thread.run_sync(build_index, catalog)
                    self._by_profile[profile_id] = CatalogIndex(catalog, lexical)
        if ranking == "semantic" and isinstance(lexical, ToolIndex):
            self._build_semantic(profile_id, catalog, lexical)
        return lexical

    def _build_semantic(self, profile_id: str, catalog: Any, lexical: ToolIndex) -> None:
        if self._building.get(profile_id) is catalog:
            return
        missing = semantic.available()
        if missing is not None:
            if profile_id not in self._warned:
                self._warned.add(profile_id)
                log.warning(
                    "profile %s: discovery.ranking semantic unavailable, ranking lexically: %s", profile_id, missing
                )
            return
        with self._table_lock:
            self._building[profile_id] = catalog

        def build() -> None:
            try:
                built = CatalogIndex(catalog, semantic.SemanticIndex(lexical))
            except Exception:
                log.exception("profile %s: semantic index build failed, ranking lexically", profile_id)
                built = None
            with self._table_lock:
                # Kept only if this build is still the wanted one: `forget()` (profile removed or its
                # discovery turned off) or a newer catalog's build dropped it meanwhile.
                if self._building.get(profile_id) is catalog:
                    del self._building[profile_id]
                    if built is not None:
                        self._semantic[profile_id] = built

        threading.Thread(target=build, name=f"semantic-index-{profile_id}", daemon=True).start()

    def forget(self, keep: set[str]) -> None:
        with self._table_lock:
            for table in (self._by_profile, self._semantic, self._building):
                for pid in list(table):
                    if pid not in keep:
                        del table[pid]


def build_index(catalog: Any) -> ToolIndex:
    return ToolIndex(
        ToolDoc.from_tool(name, tool.title, tool.description, tool.input_schema)
        for name, (_, tool) in catalog.tools.items()
    )


def call_arguments(params: dict[str, Any]) -> dict[str, Any]:
    arguments = params.get("arguments")
    if arguments is None:
        return {}
    if not isinstance(arguments, dict):
        raise DiscoveryError("arguments must be an object")
    return arguments


def _summary(tool: Any) -> dict[str, Any]:
    schema = tool.input_schema if isinstance(tool.input_schema, dict) else {}
    required = set(schema.get("required") or [])
    params = [f"{p}{'' if p in required else '?'}" for p in (schema.get("properties") or {})]
    description = (tool.description or "").strip()
    if len(description) > SNIPPET_CHARS:
        description = description[: SNIPPET_CHARS - 1].rstrip() + "…"
    entry: dict[str, Any] = {"name": tool.name, "description": description, "parameters": params}
    if tool.title:
        entry["title"] = tool.title
    return entry


def search(
    discovery: Discovery, index: Ranker, catalog: Any, allowed: Callable[[str], bool], arguments: dict[str, Any]
) -> dict[str, Any]:
    unexpected = set(arguments) - {"query", "limit"}
    if unexpected:
        raise DiscoveryError(f"unexpected arguments {sorted(unexpected)}; search_tools takes query and limit")
    limit = arguments.get("limit", discovery.max_results)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= discovery.max_results:
        raise DiscoveryError(f"limit must be an integer from 1 to {discovery.max_results}")
    try:
        hits = index.search(arguments.get("query"), min(limit, MAX_RESULTS), allowed)
    except QueryError as exc:
        raise DiscoveryError(str(exc)) from None
    tools = [{**_summary(catalog.tools[hit.name][1]), "score": hit.score} for hit in hits]
    return {"tools": tools, "total": len(tools)}


def describe(catalog: Any, allowed: Callable[[str], bool], arguments: dict[str, Any]) -> dict[str, Any]:
    names = arguments.get("names")
    if set(arguments) - {"names"}:
        raise DiscoveryError("describe_tools takes only names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DiscoveryError("names must be a non-empty list of tool names (strings)")
    if len(names) > MAX_DESCRIBE:
        raise DiscoveryError(f"at most {MAX_DESCRIBE} names per describe_tools call")
    unknown = [n for n in names if n not in catalog.tools or not allowed(n)]
    if unknown:
        raise DiscoveryError(f"unknown tools {[n[:100] for n in unknown]}; use search_tools to find tool names")
    tools = [
        catalog.tools[n][1].model_dump(by_alias=True, exclude_none=True, mode="json", exclude={"meta"})
        for n in dict.fromkeys(names)
    ]
    return {"tools": tools}


def inner_call(catalog: Any, allowed: Callable[[str], bool], params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The (name, arguments) a `call_tool` call stands for; hidden and unknown tools look alike."""
    arguments = call_arguments(params)
    unexpected = set(arguments) - {"name", "arguments"}
    if unexpected:
        raise DiscoveryError(f"unexpected arguments {sorted(unexpected)}; call_tool takes name and arguments")
    name = arguments.get("name")
    if not isinstance(name, str) or not name:
        raise DiscoveryError("name (the tool to run) must be a non-empty string")
    inner = arguments.get("arguments", {})
    if inner is None:
        inner = {}
    if not isinstance(inner, dict):
        raise DiscoveryError("arguments must be an object of the tool's arguments")
    if name not in catalog.tools or not allowed(name):
        raise DiscoveryError(f"unknown tool {name[:100]!r}; use search_tools to find tool names")
    return name, inner


def tool_result(payload: dict[str, Any]) -> dict[str, Any]:
    """A CallToolResult carrying `payload` as structured content and as its JSON text."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return {"content": [{"type": "text", "text": text}], "structuredContent": payload, "isError": False}


def visible_tools(
    discovery: Discovery, catalog: Any, allowed: Callable[[str], bool], revealed: list[str] | None = None
) -> list[dict[str, Any]]:
    """tools/list in search mode: the meta-tools, then the allowed tools matching alwaysVisible or
    revealed to this session (reveal.py), in catalog order."""
    listed = meta_tool_definitions(discovery)
    shown = set(revealed or ())
    for name, (_, tool) in catalog.tools.items():
        if name in META_NAMES or not allowed(name):
            continue
        if name in shown or any(fnmatchcase(name, pattern) for pattern in discovery.always_visible):
            listed.append(tool.model_dump(by_alias=True, exclude_none=True, mode="json"))
    return listed
