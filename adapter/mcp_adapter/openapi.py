"""OpenAPI 3.0/3.1 documents turned into MCP tool definitions (pure functions, no I/O).

One tool per operation. Name: the `operationId`, else `{method}_{path}`,
sanitized to SEP-986 characters and at most 128 long (a short hash keeps
truncated names unique). `inputSchema` is an object whose properties are the
path, query and header parameters plus `body` for a JSON request body, with
local `$ref`s resolved: component schemas land in the tool schema's `$defs`
(exact, compact, recursion-safe), other references are inlined.
A parameter named like another location's gets a location prefix (`header_X`) so nothing is silently shadowed.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from mcp_adapter.config import MAX_NAME_LEN, Filter

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_MAX_REF_DEPTH = 8


@dataclass
class ParamSpec:
    name: str  # wire name
    location: str  # path | query | header
    arg: str  # tool argument name


@dataclass
class Operation:
    tool_name: str
    method: str
    path: str
    description: str
    input_schema: dict[str, Any]
    params: list[ParamSpec] = field(default_factory=list)
    has_body: bool = False
    operation_id: str | None = None
    tags: list[str] = field(default_factory=list)


def sanitize(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "operation"
    if len(cleaned) > MAX_NAME_LEN:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        cleaned = cleaned[: MAX_NAME_LEN - 9] + "_" + digest
    return cleaned


def _pointer(doc: dict[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $refs are supported, got {ref!r}")
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[part]
    return node


SCHEMA_REF = "#/components/schemas/"


def resolve_refs(doc: dict[str, Any], node: Any, depth: int = 0, seen: tuple[str, ...] = ()) -> Any:
    """A copy of `node` with local `$ref`s inlined, except component schemas (see `collect_defs`).

    Component schema refs become `#/$defs/Name`, so shared and recursive
    schemas stay compact and exact; other refs (parameters, request bodies)
    are inlined, with cycles ending as an open object.
    """
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref.startswith(SCHEMA_REF):
                return {"$ref": "#/$defs/" + ref[len(SCHEMA_REF) :]}
            if ref.startswith("#/$defs/"):
                return dict(node)
            if ref in seen or depth >= _MAX_REF_DEPTH:
                return {"type": "object"}
            target = resolve_refs(doc, _pointer(doc, ref), depth + 1, (*seen, ref))
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            return {**target, **resolve_refs(doc, siblings, depth, seen)} if siblings else target
        return {k: resolve_refs(doc, v, depth, seen) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve_refs(doc, v, depth, seen) for v in node]
    return node


def _refs_in(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            out.add(ref[len("#/$defs/") :])
        for value in node.values():
            _refs_in(value, out)
    elif isinstance(node, list):
        for value in node:
            _refs_in(value, out)


def collect_defs(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The component schemas `schema` needs, transitively, rewritten for `$defs`."""
    components = (doc.get("components") or {}).get("schemas") or {}
    defs: dict[str, Any] = {}
    pending: set[str] = set()
    _refs_in(schema, pending)
    while pending:
        name = pending.pop()
        if name in defs or name not in components:
            continue
        defs[name] = _clean_schema(resolve_refs(doc, components[name]))
        _refs_in(defs[name], pending)
    return defs


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop OpenAPI-only keywords that are not JSON Schema."""
    out = copy.deepcopy(schema)
    for key in ("xml", "externalDocs", "discriminator"):
        out.pop(key, None)
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _json_body(request_body: dict[str, Any]) -> dict[str, Any] | None:
    content = request_body.get("content") or {}
    for media, spec in content.items():
        if "json" in media or media == "*/*":
            return _clean_schema(spec.get("schema") or {})
    return None


def _matches(op: Operation, flt: Filter) -> bool:
    if op.operation_id and op.operation_id in flt.operation_ids:
        return True
    if any(tag in flt.tags for tag in op.tags):
        return True
    return any(fnmatch.fnmatchcase(op.path, pattern) for pattern in flt.paths)


def operations(doc: dict[str, Any], include: Filter | None = None, exclude: Filter | None = None) -> list[Operation]:
    ops: list[Operation] = []
    used: set[str] = set()
    for path, item in (doc.get("paths") or {}).items():
        item = resolve_refs(doc, item)
        shared_params = item.get("parameters") or []
        for method in METHODS:
            spec = item.get(method)
            if not isinstance(spec, dict):
                continue
            op = _operation(doc, path, method, spec, shared_params)
            if include is not None and not _matches(op, include):
                continue
            if exclude is not None and _matches(op, exclude):
                continue
            base, n = op.tool_name, 2
            while op.tool_name in used:
                op.tool_name = sanitize(f"{base}_{n}")
                n += 1
            used.add(op.tool_name)
            ops.append(op)
    return ops


def _operation(
    doc: dict[str, Any], path: str, method: str, spec: dict[str, Any], shared: list[dict[str, Any]]
) -> Operation:
    op_id = spec.get("operationId")
    name = sanitize(op_id if op_id else f"{method}_{path}")
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for param in [*shared, *(spec.get("parameters") or [])]:
        param = resolve_refs(doc, param)
        if param.get("in") in ("path", "query", "header"):
            merged[(param["in"], param["name"])] = param
    properties: dict[str, Any] = {}
    required: list[str] = []
    params: list[ParamSpec] = []
    taken = {p["name"] for p in merged.values() if p["in"] == "path"}
    for (location, wire), param in merged.items():
        arg = wire if location == "path" or wire not in taken else f"{location}_{wire}"
        arg = arg if arg != "body" else f"{location}_body"
        taken.add(arg)
        schema = _clean_schema(param.get("schema") or {"type": "string"})
        if param.get("description"):
            schema.setdefault("description", param["description"])
        properties[arg] = schema
        if param.get("required") or location == "path":
            required.append(arg)
        params.append(ParamSpec(wire, location, arg))
    has_body = False
    body = spec.get("requestBody")
    if isinstance(body, dict):
        body = resolve_refs(doc, body)
        body_schema = _json_body(body)
        if body_schema is not None:
            has_body = True
            if body.get("description"):
                body_schema.setdefault("description", body["description"])
            properties["body"] = body_schema
            if body.get("required"):
                required.append("body")
    input_schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        input_schema["required"] = required
    if defs := collect_defs(doc, input_schema):
        input_schema["$defs"] = defs
    summary = spec.get("summary") or ""
    details = spec.get("description") or ""
    description = "\n\n".join(x for x in (summary, details) if x) or f"{method.upper()} {path}"
    return Operation(
        tool_name=name,
        method=method.upper(),
        path=path,
        description=description,
        input_schema=input_schema,
        params=params,
        has_body=has_body,
        operation_id=op_id,
        tags=list(spec.get("tags") or []),
    )


def server_url(doc: dict[str, Any], spec_location: str | None) -> str | None:
    """The first server URL, with `{variables}` at their defaults; relative URLs resolve against the spec URL."""
    # The spec's default server is "/", relative to where the document was fetched from.
    servers = doc.get("servers") or [{"url": "/"}]
    url = str(servers[0].get("url", "/"))
    for var, spec in (servers[0].get("variables") or {}).items():
        url = url.replace("{" + var + "}", str(spec.get("default", "")))
    if not re.match(r"^https?://", url) and spec_location and re.match(r"^https?://", spec_location):
        from urllib.parse import urljoin

        url = urljoin(spec_location, url)
    return url if re.match(r"^https?://", url) else None
