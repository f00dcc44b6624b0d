"""A small FastAPI service with its own OpenAPI document (the adapter's `openapi` source under test).

Requires `Authorization: Bearer $ITEMS_TOKEN`.
"""

from __future__ import annotations

import argparse
import os

import uvicorn
from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel

app = FastAPI(title="Items", version="1.0.0")
ITEMS: dict[int, dict[str, object]] = {1: {"id": 1, "name": "hammer", "tags": ["tool"]}}


class NewItem(BaseModel):
    name: str
    tags: list[str] = []


def _check(authorization: str | None) -> None:
    if authorization != f"Bearer {os.environ['ITEMS_TOKEN']}":
        raise HTTPException(status_code=401, detail="bad or missing token")


@app.get("/items/{item_id}", operation_id="getItem", tags=["items"], summary="Read one item")
def get_item(item_id: int, authorization: str | None = Header(default=None)) -> dict[str, object]:
    _check(authorization)
    if item_id not in ITEMS:
        raise HTTPException(status_code=404, detail=f"item {item_id} does not exist")
    return ITEMS[item_id]


@app.get("/items", operation_id="listItems", tags=["items"], summary="List items")
def list_items(tag: str | None = None, authorization: str | None = Header(default=None)) -> list[dict[str, object]]:
    _check(authorization)
    return [i for i in ITEMS.values() if tag is None or tag in i["tags"]]  # type: ignore[operator]


@app.post("/items", operation_id="createItem", tags=["items"], summary="Create an item")
def create_item(item: NewItem, authorization: str | None = Header(default=None)) -> dict[str, object]:
    _check(authorization)
    new = {"id": max(ITEMS) + 1, "name": item.name, "tags": item.tags}
    ITEMS[int(new["id"])] = new  # type: ignore[call-overload]
    return new


@app.delete("/admin/reset", operation_id="resetAll", tags=["admin"], summary="Dangerous: wipe everything")
def reset(authorization: str | None = Header(default=None)) -> dict[str, str]:
    _check(authorization)
    ITEMS.clear()
    return {"status": "wiped"}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
