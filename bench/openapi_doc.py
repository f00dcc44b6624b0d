"""A generated OpenAPI 3.0 document with N operations, for the aggregation benchmark."""

from __future__ import annotations

from typing import Any


def _operation(index: int, method: str) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"{method}Resource{index}",
        "summary": f"{method.upper()} resource {index}",
        "description": f"Operate on resource collection {index}; returns the stored record as JSON.",
        "tags": [f"group{index % 10}"],
        "parameters": [
            {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "verbose", "in": "query", "required": False, "schema": {"type": "boolean"}},
        ],
        "responses": {"200": {"description": "the record", "content": {"application/json": {"schema": {}}}}},
    }
    if method in ("post", "put"):
        op["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}, "size": {"type": "integer"}},
                        "required": ["name"],
                    }
                }
            },
        }
    return op


def document(operations: int) -> dict[str, Any]:
    """`operations` operations over operations/4 paths (get, post, put, delete on each)."""
    methods = ("get", "post", "put", "delete")
    paths: dict[str, Any] = {}
    for n in range(operations):
        index, method = divmod(n, len(methods))
        paths.setdefault(f"/resources{index}/{{id}}", {})[methods[method]] = _operation(index, methods[method])
    return {
        "openapi": "3.0.3",
        "info": {"title": "bench", "version": "1.0.0"},
        "servers": [{"url": "http://127.0.0.1:9/api"}],
        "paths": paths,
    }
