"""Tool discovery: retrieval quality, search latency and context saved (issue 19).

- Retrieval: top-1 / top-5 hit rate of `search_tools`' ranking over the evaluation set
  (tests/data/discovery: 464 real tool definitions, 231 hand-written requests), by catalog size,
  for the lexical ranking and (when its optional model package is installed) the semantic one.
  A smaller catalog is a deterministic sample that keeps each evaluated request's expected tools.
  The field weights and vocabulary were tuned on those 231; `heldout.jsonl` (40 requests written
  afterwards), `heldout-2.jsonl` (100 written before the semantic ranking existed) and
  `heldout-3.jsonl` (101 written before the int8 runner) were never tuned on until session 9;
  `heldout-4.jsonl` (128, written in session 9 before the structural reranking was built) is
  reported on its own. Since session 10 all four are development sets (the kind signals were
  chosen on them, bench/README.md round 11): their figures are no longer unbiased.
  `heldout-5.jsonl` (160, written blind in session 10 from the catalog alone, by someone who saw
  neither the ranking code nor any result) is the unbiased figure, reported on its own.
- Latency: p50/p95/p99 of one search at 1,000 tools (the real catalog padded with renamed copies),
  wall clock and CPU time; for the semantic ranking each query is embedded afresh (no cache hit),
  and also with its vector cached (the fusion alone). The two runners of the model side by side:
  CPU per query embedding, int8 onnxruntime vs float32 NumPy, and how far apart their vectors are.
  Memory: resident set added by the model and the 1,000 tools' vectors.
- call_tool: the gateway's added work per call (name check and request rewrite), in microseconds.
- Context: tokens of `tools/list` with discovery off vs search (meta-tools only), at 100/500/1,000
  tools. Counted with tiktoken's cl100k_base when its encoding is available offline; otherwise with
  the documented approximation of one token per 4 bytes of UTF-8 JSON (the tokenizer used is printed).

Run: python -m bench.discovery_search (or `make bench`, section `discovery`)
"""

from __future__ import annotations

import json
import random
import statistics
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mcp_gateway.config import Discovery
from mcp_gateway.discovery import semantic
from mcp_gateway.discovery.index import Ranker, ToolDoc, ToolIndex, allow_all
from mcp_gateway.discovery.meta import inner_call, meta_tool_definitions
from mcp_gateway.discovery.serve import rewrite_call

DATA = Path(__file__).resolve().parent.parent / "tests/data/discovery"


def load_catalog() -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = json.loads((DATA / "catalog.json").read_text())["tools"]
    return tools


def load_queries(name: str = "queries.jsonl") -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


HELDOUT = ("heldout.jsonl", "heldout-2.jsonl", "heldout-3.jsonl")
HELDOUT_4 = "heldout-4.jsonl"  # written before the structural reranking (structure.py); reported apart
HELDOUT_5 = "heldout-5.jsonl"  # written blind in session 10, after sets 1-4 became development sets


def build_index(tools: list[dict[str, Any]], ranking: str = "lexical") -> Ranker:
    lexical = ToolIndex(
        ToolDoc.from_tool(t["name"], t.get("title"), t.get("description"), t.get("inputSchema")) for t in tools
    )
    return semantic.SemanticIndex(lexical) if ranking == "semantic" else lexical


def hit_rates(
    tools: list[dict[str, Any]], queries: list[dict[str, Any]], ranking: str = "lexical"
) -> tuple[float, float, int]:
    index = build_index(tools, ranking)
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


def call_tool_cost(tools: list[dict[str, Any]], rounds: int = 2000) -> float:
    """Microseconds the gateway adds to a call made through `call_tool`: checking the inner name and
    arguments and rewriting the request into the inner tools/call (discovery/serve.py)."""
    catalog = SimpleNamespace(tools={t["name"]: ("k8s", SimpleNamespace(input_schema=t["inputSchema"])) for t in tools})
    message = {"jsonrpc": "2.0", "id": 7, "method": "tools/call"}
    message["params"] = {
        "name": "call_tool",
        "arguments": {"name": "readCoreV1NamespacedPod", "arguments": {"name": "web", "namespace": "prod"}},
    }
    headers = [(b"content-type", b"application/json"), (b"mcp-name", b"call_tool"), (b"content-length", b"120")]
    samples = []
    for _ in range(rounds):
        began = time.perf_counter()
        name, arguments = inner_call(catalog, allow_all, message["params"])
        rewrite_call(message, headers, name, arguments, catalog.tools[name][1].input_schema)
        samples.append((time.perf_counter() - began) * 1e6)
    return statistics.median(samples)


def end_to_end(calls: int = 300) -> dict[str, Any]:
    """`tools/call echo` vs `call_tool` of echo through a real gateway (2026-07-28, no auth), interleaved
    so machine load hits both alike; medians and their difference."""
    import httpx

    from bench.client import call
    from bench.stack import Stack

    with Stack("discovery") as stack:
        echo_base, _ = stack.python_module("echo", "bench.echo_server", ready_path="/mcp")
        upstreams = [{"name": "echo", "url": f"{echo_base}/mcp"}]
        open_profile = {"tenant": "bench", "upstreams": upstreams, "auth": {"mode": "none"}}
        routing = {
            "tenants": [{"id": "bench"}],
            "profiles": [
                {"id": "direct", **open_profile},
                {"id": "meta", **open_profile, "discovery": {"mode": "search"}},
            ],
        }
        gateway = stack.gateway("discovery", routing)
        direct, meta = [], []
        with httpx.Client(timeout=30) as client:
            inner = {"name": "echo", "arguments": {"text": "x"}}
            requests = [
                (direct, gateway.url("direct"), {"name": "echo", "arguments": {"text": "x"}}),
                (meta, gateway.url("meta"), {"name": "call_tool", "arguments": inner}),
            ]
            for i in range(calls + 20):
                for samples, url, params in requests if i % 2 else requests[::-1]:  # alternate the order
                    began = time.perf_counter()
                    call(client, url, "tools/call", params)
                    if i >= 20:  # warm-up: connections, backends
                        samples.append((time.perf_counter() - began) * 1000)
    d, m = statistics.median(direct), statistics.median(meta)
    return {"calls": calls, "direct_p50_ms": round(d, 3), "call_tool_p50_ms": round(m, 3), "added_ms": round(m - d, 3)}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentiles(samples: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples, n=100)
    return {"p50": round(cuts[49], 3), "p95": round(cuts[94], 3), "p99": round(cuts[98], 3)}


def search_latency(
    index: Ranker, queries: list[dict[str, Any]], fresh_queries: bool, rounds: int = 3
) -> dict[str, Any]:
    """Wall-clock and CPU milliseconds per search; `fresh_queries` empties the query-vector cache first."""
    wall, cpu = [], []
    for _ in range(rounds):
        for q in queries:
            if fresh_queries:
                semantic.EMBEDDINGS.forget_queries()
            began, began_cpu = time.perf_counter(), time.process_time()
            index.search(q["query"], 10, allow_all)
            wall.append((time.perf_counter() - began) * 1000)
            cpu.append((time.process_time() - began_cpu) * 1000)
    return {"searches": len(wall), "wall_ms": percentiles(wall), "cpu_ms": percentiles(cpu)}


def quality_table(tools: list[dict[str, Any]], queries: list[dict[str, Any]], ranking: str) -> dict[str, Any]:
    by_size = []
    for size in (16, 50, 100, 200, len(tools)):
        subset = tools if size == len(tools) else sample(tools, queries, size)
        top1, top5, evaluated = hit_rates(subset, queries, ranking)
        by_size.append({"tools": size, "requests": evaluated, "top1": round(top1, 3), "top5": round(top5, 3)})
    # Requests never tuned on: the honest figures (both files, then together).
    heldout = []
    sets = [(name, load_queries(name)) for name in HELDOUT]
    together = ("held-out 1-3", [q for _, qs in sets for q in qs])
    apart = [(name, load_queries(name)) for name in (HELDOUT_4, HELDOUT_5)]
    for name, held in [*sets, together, *apart]:
        top1, top5, evaluated = hit_rates(tools, held, ranking)
        heldout.append({"set": name, "requests": evaluated, "top1": round(top1, 3), "top5": round(top5, 3)})
    return {"ranking": ranking, "quality": by_size, "heldout": heldout}


def semantic_figures(tools: list[dict[str, Any]], queries: list[dict[str, Any]]) -> dict[str, Any]:
    rss_before = rss_mb()
    began = time.perf_counter()
    semantic.EMBEDDINGS.encoder()
    load_s = time.perf_counter() - began
    began = time.perf_counter()
    build_index(tools, "semantic")
    build_s = time.perf_counter() - began  # the first build: every tool embedded
    figures = quality_table(tools, queries, "semantic")
    big = padded(tools, 1000)
    # The copies reuse their originals' vectors (latency does not depend on the values).
    originals = {t["name"]: t for t in tools}
    for copy in big[len(tools) :]:
        original = originals[copy["name"].rsplit("_", 1)[0]]
        vector = semantic.EMBEDDINGS.tools([semantic.tool_text(doc_of(original))])[0]
        semantic.EMBEDDINGS.remember_tool(semantic.tool_text(doc_of(copy)), vector)
    index = build_index(big, "semantic")
    figures["latency"] = search_latency(index, queries, fresh_queries=True, rounds=1)
    for q in queries:  # every query vector in the cache: the next figure is the fusion alone
        index.search(q["query"], 10, allow_all)
    figures["latency_cached"] = search_latency(index, queries, fresh_queries=False, rounds=1)
    figures["memory"] = {"rss_added_mb": round(rss_mb() - rss_before), "model_load_s": round(load_s, 2)}
    figures["runners"] = runners(queries)  # after the memory figure: it loads the NumPy runner too
    figures["build_s"] = {"tools": len(tools), "first_build_s": round(build_s, 1)}
    return figures


def runners(queries: list[dict[str, Any]]) -> dict[str, Any]:
    """The loaded runner against the NumPy float32 one, query by query in turns (load hits both
    alike): median CPU ms per query embedding, and the lowest cosine between their vectors."""
    from mcp_gateway.discovery.encoder import Encoder

    loaded, numpy_runner = semantic.EMBEDDINGS.encoder(), Encoder()
    cpu: dict[str, list[float]] = {"loaded": [], "numpy": []}
    agreement = 1.0
    for q in queries:
        vectors = []
        for key, runner in (("loaded", loaded), ("numpy", numpy_runner)):
            began = time.process_time()
            vectors.append(runner.embed([q["query"]])[0])
            cpu[key].append((time.process_time() - began) * 1000)
        agreement = min(agreement, float(vectors[0] @ vectors[1]))
    return {
        "loaded": getattr(loaded, "name", type(loaded).__name__),
        "loaded_cpu_ms": round(statistics.median(cpu["loaded"]), 2),
        "numpy_cpu_ms": round(statistics.median(cpu["numpy"]), 2),
        "min_cosine": round(agreement, 5),
    }


def doc_of(tool: dict[str, Any]) -> ToolDoc:
    return ToolDoc.from_tool(tool["name"], tool.get("title"), tool.get("description"), tool.get("inputSchema"))


def run() -> dict[str, Any]:
    tools, queries = load_catalog(), load_queries()
    lexical = quality_table(tools, queries, "lexical")
    big = padded(tools, 1000)
    started = time.perf_counter()
    index = build_index(big)
    build_ms = (time.perf_counter() - started) * 1000
    lexical["latency"] = search_latency(index, queries, fresh_queries=False)
    lexical["latency"]["index_build_ms"] = round(build_ms)
    missing = semantic.available()
    rankings = [lexical] + ([semantic_figures(tools, queries)] if missing is None else [])
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]

    tokenizer, count = token_counter()
    meta = count(json.dumps({"tools": meta_tool_definitions(Discovery(mode="search"))}))
    tokens = [
        {
            "tools": size,
            "off": (full := count(listing(padded(tools, size)))),
            "search": meta,
            "saved": round(1 - meta / full, 4),
        }
        for size in (100, 500, 1000)
    ]
    hits = [{"name": h.name, "score": h.score} for h in index.search("scale a deployment", 10, allow_all)]
    return {
        "catalog": {"tools": len(tools), "requests": len(queries)},
        "rankings": rankings,
        "semantic_missing": missing,
        "load_average": load,
        "tokenizer": tokenizer,
        "tokens": tokens,
        "search_answer_tokens": count(json.dumps({"tools": hits})),
        "call_tool_added_us": round(call_tool_cost(tools), 1),
        "end_to_end": end_to_end(),
    }


def main() -> None:
    from bench.report import discovery

    print(discovery(run()))


if __name__ == "__main__":
    main()
