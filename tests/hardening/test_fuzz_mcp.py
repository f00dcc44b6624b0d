"""Property-based fuzzing of the MCP endpoints of a real gateway and a real adapter:
malformed JSON, wrong JSON-RPC shapes, huge and deeply nested bodies, invalid UTF-8 and
wrong content types. Every answer is a well-formed JSON-RPC error (or a real result for a
valid request), never a 5xx or a stack trace, and the server's memory stays bounded."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.adapter.support import Adapter, start_adapter
from tests.gateway.support import GatewayProc, Spawn, profile, start_gateway, write_config
from tests.hardening.support import rss_kib
from tests.support.processes import ManagedProcess

MAX_BYTES = 64 * 1024
VERSIONS = ["2025-11-25", "2025-06-18", "2026-07-28", "1999-01-01", "", "\u00e9t\u00e9"]
CONTENT_TYPES = ["application/json", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""]
METHODS = ["initialize", "ping", "tools/list", "tools/call", "resources/read", "prompts/get", "server/discover", "x/y"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
ids = st.one_of(st.integers(), st.text(max_size=10), st.none(), st.booleans(), st.floats(), st.lists(st.integers()))
rpc_shapes = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2, None]),
        "id": ids,
        "method": st.one_of(st.sampled_from(METHODS), json_values),
        "params": json_values,
        "result": json_values,
        "error": json_values,
    },
)


def nested(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


bodies = st.one_of(
    st.binary(max_size=512),  # includes invalid UTF-8
    st.text(max_size=200).map(str.encode),
    json_values.map(lambda v: json.dumps(v).encode()),
    rpc_shapes.map(lambda v: json.dumps(v).encode()),
    rpc_shapes.map(lambda v: json.dumps(v).encode()[:-1]),  # truncated
    st.builds(nested, st.integers(1, 200_000), st.sampled_from(["array", "object"])),
    st.builds(
        lambda n: b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"' + b"A" * n + b'"}}',
        st.integers(0, 300_000),
    ),
    st.just(b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"s":"\\ud800"}}'),  # lone surrogate escape
)


GOOD_ACCEPT = ["application/json, text/event-stream"]
ACCEPTS = st.sampled_from([*GOOD_ACCEPT, "text/html", "*/*"])
SIMPLE_CONTENT_TYPES = st.sampled_from(CONTENT_TYPES)


# Any header value a client can put on the wire: printable, possibly non-ASCII (sent as raw UTF-8).
header_values = st.text(alphabet=st.characters(exclude_categories=["Cc", "Cs"]), max_size=60)
media_types = st.builds(
    "{}/{}{}".format,
    st.sampled_from(["application", "text", "multipart", "*", "image", "APPLICATION"]),
    st.sampled_from(["json", "event-stream", "html", "*", "json-seq", "jsonx", "x-ndjson", "JSON"]),
    st.sampled_from(["", "; charset=utf-8", ";q=0.5", "; charset=latin-1; q=0", ", */*;q=0.1"]),
)
ANY_CONTENT_TYPE = st.one_of(st.just("application/json"), st.sampled_from(CONTENT_TYPES), media_types, header_values)
ANY_ACCEPT = st.one_of(st.just(GOOD_ACCEPT[0]), st.sampled_from(["text/html", "*/*"]), media_types, header_values)


def header_sets(
    content_types: st.SearchStrategy[str], accepts: st.SearchStrategy[str]
) -> st.SearchStrategy[dict[str, str]]:
    return st.fixed_dictionaries(
        {"Content-Type": content_types},
        optional={
            "MCP-Protocol-Version": st.sampled_from(VERSIONS),
            "Mcp-Method": st.sampled_from(METHODS),
            "Mcp-Name": st.text(alphabet=st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=20),
            "Accept": accepts,
            "Mcp-Session-Id": st.text(alphabet="abcdefv1.-_", max_size=40),
        },
    )


def check_answer(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    assert "Traceback" not in response.text and 'File "' not in response.text
    if response.status_code >= 400:
        try:
            error = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            raise AssertionError(f"not a JSON-RPC error: {response.status_code} {response.text[:200]!r}") from None
        assert isinstance(error["code"], int) and isinstance(error["message"], str) and error["message"]


@pytest.fixture(scope="module")
def gateway(spawn_module: Spawn, feature_module: str, tmp_path_factory: pytest.TempPathFactory) -> GatewayProc:
    config = write_config(
        tmp_path_factory.mktemp("fuzz") / "routing.yaml",
        {
            "gateway": {"maxRequestBytes": MAX_BYTES},
            "tenants": [{"id": "acme"}],
            "profiles": [profile("open", "acme", [("feat", feature_module)], auth={"mode": "none"})],
        },
    )
    return start_gateway(spawn_module, config, name="gw-fuzz")


@pytest.fixture(scope="module")
def adapter(spawn_module: Spawn, feature_module: str, tmp_path_factory: pytest.TempPathFactory) -> Adapter:
    source = {"name": "remote", "type": "mcp", "url": feature_module}
    return start_adapter(spawn_module, tmp_path_factory.mktemp("fuzz-adapter"), [source])


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def fuzz(
    http: httpx.Client,
    url: str,
    process: ManagedProcess,
    examples: int,
    content_types: st.SearchStrategy[str] = SIMPLE_CONTENT_TYPES,
    accepts: st.SearchStrategy[str] = ACCEPTS,
) -> None:
    # Warm up (imports, caches) so the RSS comparison measures growth under fuzzing only.
    for _ in range(20):
        http.post(url, content=b"{", headers={"Content-Type": "application/json"})
    before = rss_kib(process.pid)

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(body=bodies, head=header_sets(content_types, accepts))
    def one(body: bytes, head: dict[str, str]) -> None:
        raw = {k: v.strip(" \t").encode() for k, v in head.items()}  # raw UTF-8 header bytes are hostile input too
        check_answer(http.post(url, content=body, headers=raw))

    one()
    for method in ("PUT", "PATCH", "DELETE"):
        check_answer(http.request(method, url, headers={"Accept": "text/event-stream"}, timeout=5))
    with http.stream("GET", url, headers={"Accept": "text/event-stream"}, timeout=5) as stream:
        # Without a session a GET is either refused cleanly or a (stateless) event stream.
        assert stream.status_code < 500
        if stream.status_code == 200:
            assert stream.headers["content-type"].startswith("text/event-stream")
    grown = (rss_kib(process.pid) - before) / 1024
    assert grown < 64, f"RSS grew by {grown:.0f} MiB while fuzzing"
    assert process.alive()


def test_fuzz_gateway_mcp_endpoint(gateway: GatewayProc, http: httpx.Client) -> None:
    fuzz(http, gateway.url("open"), gateway.process, 250)


def test_fuzz_adapter_mcp_endpoint(adapter: Adapter, http: httpx.Client) -> None:
    # Any Content-Type and Accept header, well-formed or not: every error is a JSON-RPC error body.
    fuzz(http, adapter.mcp_url, adapter.process, 250, ANY_CONTENT_TYPE, ANY_ACCEPT)


def test_deep_and_oversized_bodies(gateway: GatewayProc, adapter: Adapter, http: httpx.Client) -> None:
    head = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    deep = nested(30_000, "array")  # under the gateway's 64 KiB limit, far past any parser's depth
    huge = b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"' + b"A" * 8_000_000 + b'"}}'
    for url in (gateway.url("open"), adapter.mcp_url):
        answer = http.post(url, content=deep, headers=head)
        check_answer(answer)
        assert answer.json()["error"]["code"] == -32700
    too_large = http.post(gateway.url("open"), content=huge, headers=head)
    check_answer(too_large)
    assert too_large.status_code == 413 and str(MAX_BYTES) in too_large.json()["error"]["message"]
