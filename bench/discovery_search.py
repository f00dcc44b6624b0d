"""Tool discovery: retrieval quality, search latency and context saved (issue 19).

- Retrieval: top-1 / top-5 hit rate of `search_tools`' ranking over the evaluation set
  (tests/data/discovery: 464 real tool definitions, 231 hand-written requests), by catalog size.
  A smaller catalog is a deterministic sample that keeps each evaluated request's expected tools.
- Latency: p50/p95/p99 of one search at 1,000 tools (the real catalog padded with renamed copies).
- Context: tokens of `tools/list` with discovery off vs search (meta-tools only), at 100/500/1,000
  tools. Counted with tiktoken's cl100k_base when its encoding is available offline; otherwise with
  the documented approximation of one token per 4 bytes of UTF-8 JSON (the tokenizer used is printed).

Run: python -m bench.discovery_search
"""

from __future__ import annotations

import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

from mcp_gateway.config import Discovery
from mcp_gateway.discovery.index import ToolDoc, ToolIndex, allow_all
from mcp_gateway.discovery.meta import meta_tool_definitions

DATA = Path(__file__).resolve().parent.parent / "tests/data/discovery"


def load_catalog() -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = json.loads((DATA / "catalog.json").read_text())["tools"]
    return tools


def load_queries() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / "queries.jsonl").read_text().splitlines() if line.strip()]


def build_index(tools: list[dict[str, Any]]) -> ToolIndex:
    return ToolIndex(
        ToolDoc.from_tool(t["name"], t.get("title"), t.get("description"), t.get("inputSchema")) for t in tools
    )


def hit_rates(tools: list[dict[str, Any]], queries: list[dict[str, Any]]) -> tuple[float, float, int]:
    index = build_index(tools)
    names = {t["name"] for t in tools}
    top1 = top5 = evaluated = 0
    for q in queries:
        expected = set(q["expected"]) & names
        if not expected:
            continue
        evaluated += 1
        ranked = [hit.name for hit in index.search(q["query"], 5, allow_all)]
        top1 += bool(ranked[:1] and ranked[0] in expected)
        top5 += bool(expected & set(ranked))
    return top1 / evaluated, top5 / evaluated, evaluated


def sample(tools: list[dict[str, Any]], queries: list[dict[str, Any]], size: int, seed: int = 19) -> list[Any]:
    """`size` tools: the expected tools of a random subset of requests, filled up with random others."""
    rng = random.Random(seed)
    by_name = {t["name"]: t for t in tools}
    chosen: dict[str, dict[str, Any]] = {}
    for q in rng.sample(queries, len(queries)):
        if len(chosen) + len(q["expected"]) > size // 2:
            break
        chosen.update({n: by_name[n] for n in q["expected"]})
    others = [t for t in tools if t["name"] not in chosen]
    for t in rng.sample(others, size - len(chosen)):
        chosen[t["name"]] = t
    return list(chosen.values())


def padded(tools: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    out = list(tools)
    copy = 2
    while len(out) < size:
        out += [{**t, "name": f"{t['name']}_{copy}"} for t in tools[: size - len(out)]]
        copy += 1
    return out[:size]


def token_counter() -> tuple[str, Any]:
    try:
        import tiktoken  # optional: its encodings are fetched on first use, so offline it may fail

        encoding = tiktoken.get_encoding("cl100k_base")
        return "tiktoken cl100k_base", lambda text: len(encoding.encode(text))
    except Exception:
        return "approximation: UTF-8 bytes / 4", lambda text: (len(text.encode()) + 3) // 4


def listing(tools: list[dict[str, Any]]) -> str:
    return json.dumps({"tools": [{k: v for k, v in t.items() if k != "origin"} for t in tools]})


def main() -> None:
    tools, queries = load_catalog(), load_queries()
    print(f"evaluation set: {len(tools)} tools, {len(queries)} requests")
    print("catalog  requests  top-1   top-5")
    for size in (16, 50, 100, 200, len(tools)):
        subset = tools if size == len(tools) else sample(tools, queries, size)
        top1, top5, evaluated = hit_rates(subset, queries)
        print(f"{size:7d}  {evaluated:8d}  {top1:6.1%}  {top5:6.1%}")

    big = padded(tools, 1000)
    started = time.perf_counter()
    index = build_index(big)
    build_ms = (time.perf_counter() - started) * 1000
    samples = []
    for _ in range(3):
        for q in queries:
            began = time.perf_counter()
            index.search(q["query"], 10, allow_all)
            samples.append((time.perf_counter() - began) * 1000)
    cuts = statistics.quantiles(samples, n=100)
    print(
        f"search at 1000 tools: p50 {cuts[49]:.3f} ms  p95 {cuts[94]:.3f} ms  p99 {cuts[98]:.3f} ms "
        f"({len(samples)} searches; index build {build_ms:.0f} ms)"
    )

    name, count = token_counter()
    meta = count(json.dumps({"tools": meta_tool_definitions(Discovery(mode="search"))}))
    print(f"tokens of tools/list ({name}):")
    print("  tools   discovery off   search   saved")
    for size in (100, 500, 1000):
        full = count(listing(padded(tools, size)))
        print(f"  {size:5d}   {full:13d}   {meta:6d}   {1 - meta / full:6.1%}")
    search_result = count(json.dumps(index.search("scale a deployment", 10, allow_all), default=vars))
    print(f"  (one search_tools answer of 10 hits costs about {search_result} tokens more)")


if __name__ == "__main__":
    main()
