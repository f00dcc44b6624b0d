"""`discovery.ranking: semantic`: BM25F fused with sentence embeddings by reciprocal rank fusion.

Lexical ranking misses requests worded unlike the tool ("take the broken machine out of the
cluster" for `deleteCoreV1Node`); embeddings miss exact names and rare words. Fusing the two
ranks (not their scores, which are on unrelated scales) keeps what each gets right.

- Both rankings see only the tools the caller may see (`allowed` filters before ranking), so a
  hidden tool neither appears nor pushes another down.
- Tool vectors are computed once per catalog change, and only for tools whose text changed
  (`Embeddings` keeps them by text, process-wide); query vectors are cached too (LRU).
- No model, no semantic ranking: `available()` says why, and the caller stays lexical.
"""

from __future__ import annotations

import heapq
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mcp_gateway.discovery import structure
from mcp_gateway.discovery.index import MAX_RESULTS, Allowed, Hit, ToolDoc, ToolIndex, parse_query
from mcp_gateway.discovery.text import split_words

if TYPE_CHECKING:
    from mcp_gateway.discovery.encoder import Array, SentenceEncoder

RRF_K = 60  # the usual reciprocal-rank-fusion constant: rank 1 and rank 10 differ, but not wildly
FUSION_DEPTH = 100  # candidates fused from each ranking; deeper ranks add < 1/160 each and change nothing measurable
DESCRIPTION_CHARS = 300  # what is embedded of a description: its opening says what the tool does
MAX_CACHED_TOOLS = 50_000
MAX_CACHED_QUERIES = 4_096


def available() -> str | None:
    """None when the semantic ranking can run here, else why not (with the install command)."""
    try:
        # encoder.py first: it limits BLAS threads before NumPy loads (a later import cannot).
        from mcp_gateway.discovery.encoder import model_dir

        model_dir()
    except ImportError:
        return "the semantic ranking needs NumPy: pip install --no-deps -r requirements/semantic.txt"
    except RuntimeError as exc:
        return str(exc)
    return None


def tool_text(doc: ToolDoc) -> str:
    """What is embedded for a tool: its name as words ("read core v1 namespaced pod log"), title and
    the opening of its description."""
    parts = [" ".join(split_words(doc.name)), doc.title, doc.description[:DESCRIPTION_CHARS]]
    return ". ".join(p.strip() for p in parts if p.strip())


class Embeddings:
    """The process's encoder (loaded on first use) and its vectors, cached by text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # loading the encoder
        self._cache_lock = threading.Lock()  # searches (event loop) and builds (worker threads) share the caches
        self._encoder: SentenceEncoder | None = None
        self._tools: OrderedDict[str, Array] = OrderedDict()
        self._queries: OrderedDict[str, Array] = OrderedDict()

    def encoder(self) -> SentenceEncoder:
        with self._lock:
            if self._encoder is None:
                from mcp_gateway.discovery.encoder import load

                self._encoder = load()
            return self._encoder

    def tools(self, texts: Sequence[str]) -> Array:
        import numpy as np

        with self._cache_lock:
            known = {t: self._tools[t] for t in texts if t in self._tools}
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing:
            for text, vector in zip(missing, self.encoder().embed(missing), strict=True):
                known[text] = vector
                self._remember(self._tools, text, vector, MAX_CACHED_TOOLS)
        dim = self.encoder().dim
        return np.stack([known[t] for t in texts]) if texts else np.zeros((0, dim), dtype=np.float32)

    def query(self, text: str) -> Array:
        with self._cache_lock:
            vector = self._queries.get(text)
            if vector is not None:
                self._queries.move_to_end(text)
                return vector
        vector = self.encoder().embed([text])[0]
        self._remember(self._queries, text, vector, MAX_CACHED_QUERIES)
        return vector

    def remember_tool(self, text: str, vector: Array) -> None:
        self._remember(self._tools, text, vector, MAX_CACHED_TOOLS)

    def forget_queries(self) -> None:
        with self._cache_lock:
            self._queries.clear()

    def _remember(self, cache: OrderedDict[str, Array], text: str, vector: Array, bound: int) -> None:
        with self._cache_lock:
            cache[text] = vector
            while len(cache) > bound:
                cache.popitem(last=False)


EMBEDDINGS = Embeddings()


class SemanticIndex:
    """The lexical index plus one unit vector per tool; ranks by reciprocal rank fusion of both."""

    kind = "semantic"

    def __init__(self, lexical: ToolIndex, embeddings: Embeddings = EMBEDDINGS) -> None:
        self.lexical = lexical
        self.names = lexical.names
        self.embeddings = embeddings
        self.vectors = embeddings.tools([tool_text(d) for d in lexical.docs])

    def __len__(self) -> int:
        return len(self.lexical)

    def search(self, query: Any, limit: int, allowed: Allowed) -> list[Hit]:
        import numpy as np

        parse_query(query)  # the same refusals as the lexical ranking (empty, huge, word-less)
        visible = np.fromiter((allowed(name) for name in self.names), dtype=bool, count=len(self.names))
        shown = int(visible.sum())
        if not shown:
            return []
        lexical = self.lexical.scores(query)
        shown_lexical = (i for i in lexical if visible[i])
        by_lexical = heapq.nsmallest(FUSION_DEPTH, shown_lexical, key=lambda i: (-lexical[i], self.names[i]))
        # All tools' similarities (one matrix-vector product), hidden ones pushed below any real one:
        # cheaper than copying the visible rows out first.
        similarity = np.where(visible, self.vectors @ self.embeddings.query(query.strip()), -np.inf)
        depth = min(FUSION_DEPTH, shown)
        top = np.argpartition(-similarity, depth - 1)[:depth]
        by_meaning = sorted((int(j) for j in top), key=lambda j: (-similarity[j], self.names[j]))
        fused: dict[int, float] = {}
        for ranking in (by_lexical, by_meaning):
            for rank, i in enumerate(ranking, start=1):
                fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_K + rank)
        limit = max(1, min(limit, MAX_RESULTS))
        # The best fused candidates, reordered by how well their structure fits the request (structure.py).
        depth = max(limit, structure.DEPTH)
        best = heapq.nsmallest(depth, fused.items(), key=lambda item: (-item[1], self.names[item[0]]))
        kinds = self.lexical.kinds
        request = structure.parse_request(query, kinds)
        wider = structure.with_named_kinds(request, best, fused, kinds, lambda i: bool(visible[i]))
        best = structure.rerank(query, wider, self.lexical.shapes, kinds, len(wider) - len(best), request)[:limit]
        return [Hit(self.names[i], round(score, 5)) for i, score in best]
