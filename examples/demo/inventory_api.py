"""Demo HTTP service with an OpenAPI document, for `make run`.

FastAPI generates the document at /openapi.json; the adapter turns each
operation into an MCP tool. Run: python examples/demo/inventory_api.py PORT [HOST]
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

app = FastAPI(title="Demo inventory", version="1.0.0")


class Item(BaseModel):
    sku: str = Field(description="Stock-keeping unit, e.g. BOLT-M6")
    name: str
    quantity: int = Field(ge=0)


_items: dict[str, Item] = {
    "BOLT-M6": Item(sku="BOLT-M6", name="Hex bolt M6", quantity=420),
    "NUT-M6": Item(sku="NUT-M6", name="Hex nut M6", quantity=380),
}


@app.get("/items", operation_id="list_items", summary="List every item in stock")
def list_items() -> list[Item]:
    return list(_items.values())


@app.get("/items/{sku}", operation_id="get_item", summary="Look up one item by SKU")
def get_item(sku: str) -> Item:
    if sku not in _items:
        raise HTTPException(status_code=404, detail=f"no item with SKU {sku}")
    return _items[sku]


@app.post("/items", operation_id="add_item", summary="Add or replace an item")
def add_item(item: Item) -> Item:
    _items[item.sku] = item
    return item


if __name__ == "__main__":
    # Loopback unless told otherwise (a container publishes it on its network: deploy/compose).
    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    uvicorn.run(app, host=host, port=int(sys.argv[1]) if len(sys.argv) > 1 else 8801, log_level="warning")
