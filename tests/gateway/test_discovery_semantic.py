"""`discovery.ranking: semantic`: the all-MiniLM-L6-v2 model from its registry packages (installed by
scripts/setup-python.sh from requirements/semantic.txt), run by onnxruntime (int8) or NumPy (float32),
fused with BM25; the policy filters before either ranking, through the gateway too, in both
protocol eras."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from mcp.shared.exceptions import MCPError
from mcp_gateway.discovery import semantic, structure
from mcp_gateway.discovery.encoder import Encoder, OnnxEncoder, SentenceEncoder
from mcp_gateway.discovery.index import QueryError, ToolDoc, ToolIndex
from mcp_gateway.discovery.meta import Indexes

from tests.gateway.support import MODERN, GatewayProc, Spawn, mcp_client, profile, start_gateway

DATA = Path(__file__).resolve().parents[1] / "data/discovery"
SAMPLE = [
    "deleteCoreV1Node",
    "listCoreV1Node",
    "listCoreV1NamespacedPod",
    "readCoreV1NamespacedPodLog",
    "createRbacAuthorizationV1NamespacedRoleBinding",
    "createBatchV1NamespacedCronJob",
    "patchAppsV1NamespacedDeploymentScale",
    "readCoreV1NamespacedSecret",
    "get-sum",
    "get-env",
    "echo",
    "get-tiny-image",
]


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return semantic.EMBEDDINGS.encoder()


@pytest.fixture(scope="module")
def float_encoder() -> Encoder:
    return Encoder()  # the NumPy runner, used where onnxruntime is not installed


@pytest.fixture(scope="module")
def index() -> semantic.SemanticIndex:
    tools = {t["name"]: t for t in json.loads((DATA / "catalog.json").read_text())["tools"]}
    docs = [ToolDoc.from_tool(n, None, tools[n]["description"], tools[n]["inputSchema"]) for n in SAMPLE]
    return semantic.SemanticIndex(ToolIndex(docs))


def names(index: semantic.SemanticIndex, query: str, limit: int = 5, hidden: frozenset[str] = frozenset()) -> list[str]:
    return [hit.name for hit in index.search(query, limit, lambda name: name not in hidden)]


def test_model_ships_in_its_package_and_tokenizes_like_bert(encoder: SentenceEncoder) -> None:
    assert semantic.available() is None
    assert encoder.tokenizer.encode("Hello, world!") == [101, 7592, 1010, 2088, 999, 102]
    assert encoder.tokenizer.encode("Café") == encoder.tokenizer.encode("cafe")  # uncased, accents stripped


def test_embeddings_are_unit_vectors_that_put_paraphrases_close(encoder: SentenceEncoder) -> None:
    vectors = encoder.embed(["remove a worker machine", "delete a node from the cluster", "add two numbers"])
    assert vectors.shape == (3, 384)
    assert abs(float((vectors[0] ** 2).sum()) - 1.0) < 1e-4
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2]) + 0.2
    # Batching and padding do not change a text's vector.
    alone = encoder.embed(["add two numbers"])[0]
    assert float(alone @ vectors[2]) > 0.9999


def test_the_int8_runner_is_preferred_and_agrees_with_the_float32_model(
    encoder: SentenceEncoder, float_encoder: Encoder
) -> None:
    assert isinstance(encoder, OnnxEncoder)  # onnxruntime and the int8 model are in requirements/semantic.txt
    texts = ["take the broken machine out of the cluster", "delete a node", "Toggles simulated updates on or off."]
    int8, float32 = encoder.embed(texts), float_encoder.embed(texts)
    # Quantisation moves a vector by well under what separates a match from a near miss.
    assert min(float(a @ b) for a, b in zip(int8, float32, strict=True)) > 0.999


def test_semantic_ranking_finds_a_request_worded_unlike_the_tool(index: semantic.SemanticIndex) -> None:
    assert index.kind == "semantic" and len(index) == len(SAMPLE)
    assert names(index, "what values does the process environment hold", 3)[0] == "get-env"
    assert "get-sum" in names(index, "total of 5 and 7", 3)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("suspend a job", "patchBatchV1NamespacedJob"),  # not its status subresource
        ("list jobs in the batch namespace", "listBatchV1NamespacedJob"),  # not all namespaces
    ],
)
def test_the_fused_ranking_is_reordered_by_structure(
    query: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = json.loads((DATA / "catalog.json").read_text())["tools"]
    jobs = [t for t in tools if "BatchV1" in t["name"] and "CronJob" not in t["name"] and "Resources" not in t["name"]]
    index = semantic.SemanticIndex(
        ToolIndex(ToolDoc.from_tool(t["name"], None, t["description"], t["inputSchema"]) for t in jobs)
    )
    assert names(index, query)[0] == expected
    monkeypatch.setattr(structure, "WEIGHT", 0.0)  # the fused ranking alone puts another operation first
    assert names(index, query)[0] != expected


def test_policy_hidden_tools_are_never_ranked(index: semantic.SemanticIndex) -> None:
    query = "add two numbers and tell me the total"
    best = names(index, query, 1)
    assert best == ["get-sum"]
    shown = names(index, query, len(SAMPLE), hidden=frozenset(best))
    assert "get-sum" not in shown and len(shown) >= 1  # the others still rank
    assert names(index, query, 5, hidden=frozenset(SAMPLE)) == []


def test_semantic_ranking_refuses_what_the_lexical_one_refuses(index: semantic.SemanticIndex) -> None:
    for bad in ("", "   ", "the of and", "x" * 5000, 7):
        with pytest.raises(QueryError):
            index.search(bad, 5, lambda _: True)


class CountingEncoder:
    """The real encoder, recording how many texts each call embeds."""

    def __init__(self, encoder: SentenceEncoder) -> None:
        self.encoder, self.dim, self.calls = encoder, encoder.dim, list[int]()

    def embed(self, texts: list[str]) -> Any:
        self.calls.append(len(texts))
        return self.encoder.embed(texts)


def test_tool_vectors_are_computed_once_per_text(encoder: SentenceEncoder) -> None:
    embeddings = semantic.Embeddings()
    counting = CountingEncoder(encoder)
    embeddings._encoder = counting  # type: ignore[assignment]
    first = [ToolDoc("get_weather", "", "Weather for a city", ()), ToolDoc("echo", "", "Echoes text", ())]
    semantic.SemanticIndex(ToolIndex(first), embeddings)
    changed = [first[0], ToolDoc("echo", "", "Echoes text back, louder", ())]
    semantic.SemanticIndex(ToolIndex(changed), embeddings)
    assert counting.calls == [2, 1]  # the catalog change re-embedded only the changed tool


class GatedIndex(semantic.SemanticIndex):
    """The real semantic index, whose build waits until the test opens the gate."""

    gate = threading.Event()

    def __init__(self, lexical: ToolIndex) -> None:
        assert self.gate.wait(30)
        super().__init__(lexical)


async def test_a_build_finishing_after_forget_does_not_bring_the_index_back(monkeypatch: pytest.MonkeyPatch) -> None:
    tool = SimpleNamespace(title=None, description="Returns the sum of two numbers", input_schema={})
    catalog = SimpleNamespace(tools={"get-sum": ("feat", tool)})
    monkeypatch.setattr(semantic, "SemanticIndex", GatedIndex)
    indexes = Indexes()
    assert (await indexes.of("gone", catalog, "semantic")).kind == "lexical"  # the build starts, gated
    indexes.forget(set())  # the profile is removed (or its discovery turned off) meanwhile
    GatedIndex.gate.set()
    for thread in threading.enumerate():
        if thread.name == "semantic-index-gone":
            thread.join(30)
    # The finished build was dropped: the profile starts afresh (lexical, a new build) instead of
    # getting the forgotten index back.
    assert (await indexes.of("gone", catalog, "semantic")).kind == "lexical"


def test_the_numpy_forward_pass_stays_in_float32(float_encoder: Encoder, monkeypatch: pytest.MonkeyPatch) -> None:
    # A float64 scalar anywhere promotes the activations, and float64 @ float32 leaves BLAS (20x slower).
    encoder = float_encoder
    seen: set[str] = set()
    dense = encoder._dense

    def recording(x: Any, name: str) -> Any:
        seen.add(x.dtype.name)
        return dense(x, name)

    monkeypatch.setattr(encoder, "_dense", recording)
    vectors = encoder.embed(["scale the web deployment to three replicas"])
    assert seen == {"float32"} and vectors.dtype == np.float32


@pytest.fixture(scope="module")
def gateway(spawn_module: Spawn, feature_module: str, tmp_path_factory: pytest.TempPathFactory) -> GatewayProc:
    path = tmp_path_factory.mktemp("semantic") / "routing.yaml"
    hidden = {"tools": {"deny": ["fail", "protocol_error"]}}
    discovery = {"mode": "hybrid", "ranking": "semantic"}
    path.write_text(
        json.dumps(
            {
                "tenants": [{"id": "free"}],
                "profiles": [
                    profile(
                        "meaning",
                        "free",
                        [("feat", feature_module)],
                        discovery=discovery,
                        policy=hidden,
                        auth={"mode": "none"},
                    )
                ],
            }
        )
    )
    proc = start_gateway(spawn_module, path, name="gw-semantic")
    with proc.admin() as admin:
        for _ in range(600):  # the tool vectors are built in the background; searches are lexical until then
            found = admin.get("/admin/v1/profiles/meaning/tools/search", params={"q": "add numbers"}).json()
            if found["ranking"] == "semantic":
                break
            time.sleep(0.5)
        assert found["ranking"] == "semantic", found
    return proc


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result
    data: dict[str, Any] = result.structured_content
    return data


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_semantic_search_through_the_gateway_never_reveals_a_hidden_tool(gateway: GatewayProc, mode: str) -> None:
    async with mcp_client(gateway.url("meaning"), mode=mode) as client:
        found = structured(await client.call_tool("search_tools", {"query": "sum of two integers"}))
        assert found["tools"][0]["name"] == "add"
        for query in ("fail with a tool error", "raise a protocol error", "make the call fail"):
            hits = [t["name"] for t in structured(await client.call_tool("search_tools", {"query": query}))["tools"]]
            assert not {"fail", "protocol_error"} & set(hits)
        with pytest.raises(MCPError, match="unknown tool 'fail'"):
            await client.call_tool("call_tool", {"name": "fail", "arguments": {}})
        with pytest.raises(MCPError, match="query is empty"):
            await client.call_tool("search_tools", {"query": " "})
    with gateway.admin() as admin:
        shown = admin.get("/admin/v1/profiles/meaning/tools/search", params={"q": "fail with a tool error"}).json()
    assert shown["ranking"] == "semantic" and "fail" not in [t["name"] for t in shown["tools"]]
