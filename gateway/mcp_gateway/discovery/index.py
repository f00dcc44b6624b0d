"""A lexical tool index: BM25F over a tool's name, title, description and parameters.

Written here rather than taken from a library: the catalog is small (thousands of tools at most),
the fields need their own weights, and queries must be filtered by the caller's policy before
ranking, which general BM25 packages do not offer. No model and no network.

`Ranker` is the seam for other rankers; `ToolIndex` is the lexical one, `semantic.SemanticIndex`
fuses it with sentence embeddings (optional model package).
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from mcp_gateway.discovery import structure
from mcp_gateway.discovery.text import SYNONYMS, name_terms, query_terms, terms

MAX_QUERY_CHARS = 1000
MAX_QUERY_TERMS = 64
MAX_RESULTS = 50

# Field weights: a word in the name says more than one in a long description.
# Parameter descriptions are mostly boilerplate shared by many tools (Kubernetes' `dryRun`,
# `fieldSelector`...): they count, but barely. Weights chosen on tests/data/discovery (bench).
FIELD_WEIGHTS: Mapping[str, float] = {"name": 5.0, "title": 2.0, "description": 1.0, "params": 0.3, "param_docs": 0.05}
# BM25 saturation and per-field length normalisation.
K1 = 1.2
B: Mapping[str, float] = {"name": 0.3, "title": 0.3, "description": 0.75, "params": 0.5, "param_docs": 0.75}
SYNONYM_WEIGHT = 0.3
# A description is indexed up to this length: a README pasted into a description must not drown the rest.
MAX_FIELD_CHARS = 4000


class QueryError(ValueError):
    """A query the index refuses (empty, too long, no searchable words); the message is for the caller."""


@dataclass(frozen=True)
class ToolDoc:
    """The searchable parts of one tool definition."""

    name: str
    title: str
    description: str
    params: tuple[tuple[str, str], ...]  # (parameter name, its description)
    required: tuple[str, ...] = ()  # the required parameters' names

    @classmethod
    def from_tool(cls, name: str, title: str | None, description: str | None, schema: Any) -> ToolDoc:
        properties = schema.get("properties") if isinstance(schema, dict) else None
        params: list[tuple[str, str]] = []
        if isinstance(properties, dict):
            for pname, pschema in properties.items():
                doc = pschema.get("description") if isinstance(pschema, dict) else None
                params.append((str(pname), doc if isinstance(doc, str) else ""))
        needed = schema.get("required") if isinstance(schema, dict) else None
        required = tuple(str(r) for r in needed) if isinstance(needed, list) else ()
        return cls(name, title or "", description or "", tuple(params), required)

    def fields(self) -> dict[str, str]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description[:MAX_FIELD_CHARS],
            "params": " ".join(p for p, _ in self.params),
            "param_docs": " ".join(d for _, d in self.params)[:MAX_FIELD_CHARS],
        }


@dataclass(frozen=True)
class Hit:
    name: str
    score: float


Allowed = Callable[[str], bool]


class Ranker(Protocol):
    """Ranks a catalog's tools for a query; `allowed` filters before ranking (hidden tools never count)."""

    kind: str  # "lexical" or "semantic": reported to operators (admin search, CLI, console)

    def search(self, query: Any, limit: int, allowed: Allowed) -> list[Hit]: ...

    def __len__(self) -> int: ...


def parse_query(query: Any) -> list[str]:
    """The query's terms, or QueryError saying what is wrong with it."""
    if not isinstance(query, str):
        raise QueryError("query must be a string of keywords or a short sentence")
    if not query.strip():
        raise QueryError("query is empty: describe the task, e.g. 'read a file' or 'restart a deployment'")
    if len(query) > MAX_QUERY_CHARS:
        raise QueryError(f"query is {len(query)} characters long; keep it under {MAX_QUERY_CHARS}")
    words = query_terms(query)
    if not words:
        raise QueryError("query has no searchable words (only stop words or punctuation); use task keywords")
    return words[:MAX_QUERY_TERMS]


class ToolIndex:
    """BM25F over the catalog's tools; build once per catalog version, query many times."""

    kind = "lexical"

    def __init__(self, docs: Iterable[ToolDoc]) -> None:
        self.docs = list(docs)
        self.names = [d.name for d in self.docs]
        per_field: list[dict[str, Counter[str]]] = [
            {f: Counter(name_terms(text) if f == "name" else terms(text)) for f, text in doc.fields().items()}
            for doc in self.docs
        ]
        count = max(len(self.docs), 1)
        avg = {f: max(sum(sum(fields[f].values()) for fields in per_field) / count, 1.0) for f in FIELD_WEIGHTS}
        # term -> [(doc index, weighted and length-normalised frequency)]: the score needs nothing else.
        postings: dict[str, list[tuple[int, float]]] = {}
        for i, fields in enumerate(per_field):
            weighted: dict[str, float] = {}
            for f, counts in fields.items():
                norm = 1 - B[f] + B[f] * sum(counts.values()) / avg[f]
                for term, tf in counts.items():
                    weighted[term] = weighted.get(term, 0.0) + FIELD_WEIGHTS[f] * tf / norm
            for term, wtf in weighted.items():
                postings.setdefault(term, []).append((i, wtf))
        self._postings = postings
        self._idf = {t: math.log(1 + (count - len(p) + 0.5) / (len(p) + 0.5)) for t, p in postings.items()}
        self.shapes = structure.tool_shapes(self.names, [d.required for d in self.docs])
        self.kinds = structure.kind_table(self.shapes)

    def __len__(self) -> int:
        return len(self.docs)

    def _weighted_terms(self, words: list[str]) -> dict[str, float]:
        weights: dict[str, float] = {}
        for word in words:
            weights[word] = weights.get(word, 0.0) + 1.0
        for word in list(weights):
            for other in SYNONYMS.get(word, ()):
                if other not in weights:
                    weights[other] = SYNONYM_WEIGHT
        return weights

    def scores(self, query: Any) -> dict[int, float]:
        """BM25F score of every document sharing a term with the query (by document index)."""
        scores: dict[int, float] = {}
        for term, qweight in self._weighted_terms(parse_query(query)).items():
            posting = self._postings.get(term)
            if not posting:
                continue
            idf = self._idf[term] * qweight
            for doc, wtf in posting:
                scores[doc] = scores.get(doc, 0.0) + idf * wtf / (K1 + wtf)
        return scores

    def search(self, query: Any, limit: int, allowed: Allowed) -> list[Hit]:
        scores = self.scores(query)
        limit = max(1, min(limit, MAX_RESULTS))
        ranked = (item for item in scores.items() if allowed(self.names[item[0]]))
        # Ties break by name, so results are stable across replicas and runs.
        depth = max(limit, structure.DEPTH)
        best = heapq.nsmallest(depth, ranked, key=lambda item: (-item[1], self.names[item[0]]))
        # Then reordered by how well each tool's structure fits the request (structure.py).
        request = structure.parse_request(query, self.kinds)
        wider = structure.with_named_kinds(request, best, scores, self.kinds, lambda i: allowed(self.names[i]))
        best = structure.rerank(query, wider, self.shapes, self.kinds, len(wider) - len(best), request)[:limit]
        return [Hit(self.names[i], round(score, 4)) for i, score in best]


def allow_all(name: str) -> bool:
    return True
