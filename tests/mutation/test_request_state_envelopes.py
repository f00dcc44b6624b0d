"""request_state.py's helpers in process: envelope keys and rotation, recognising gateway-sealed
state, marking and unmarking the upstream's state, size limits, and the reworded refusal
(mutation-tested; the middleware itself is covered end to end by tests/gateway/test_request_state.py)."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from mcp import types
from mcp.server.request_state import AESGCMRequestStateCodec, InvalidRequestState
from mcp.shared.exceptions import MCPError
from mcp_gateway import request_state
from mcp_gateway.request_state import (
    MAX_ENVELOPE_CHARS,
    REFUSAL,
    check_size,
    gateway_minted,
    mark,
    refusal,
    state_codec,
    unmark_params,
)
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS


def test_envelope_keys_are_derived_per_purpose_and_rotate() -> None:
    old, new = b"o" * 32, b"n" * 32
    sealed_old = state_codec([old]).seal(b"payload")
    rotated = state_codec([new, old])
    assert rotated.unseal(sealed_old) == b"payload"
    assert state_codec([new]).unseal(rotated.seal(b"x")) == b"x"
    assert gateway_minted(rotated, sealed_old) and not gateway_minted(state_codec([new]), sealed_old)
    # The envelope key is derived from the session key under its own label, not the key itself.
    sealed = state_codec([new]).seal(b"x")
    derived = hmac.new(new, b"mcp-gateway/request-state/v1", hashlib.sha256).digest()
    assert AESGCMRequestStateCodec([derived]).unseal(sealed) == b"x"
    with pytest.raises(InvalidRequestState):
        AESGCMRequestStateCodec([hashlib.sha256(new).digest()]).unseal(sealed)


def test_only_gateway_sealed_strings_within_the_limit_count_as_minted(monkeypatch: pytest.MonkeyPatch) -> None:
    codec = state_codec([b"k" * 32])
    sealed = codec.seal(b"u:abc")
    assert gateway_minted(codec, sealed)
    assert not gateway_minted(codec, sealed[:-4] + "AAAA")
    assert not gateway_minted(codec, "u:abc") and not gateway_minted(codec, None) and not gateway_minted(codec, 7)
    monkeypatch.setattr(request_state, "MAX_ENVELOPE_CHARS", len(sealed) - 1)
    assert not gateway_minted(codec, sealed)
    monkeypatch.setattr(request_state, "MAX_ENVELOPE_CHARS", len(sealed))
    assert gateway_minted(codec, sealed)


def test_mark_records_whether_the_upstream_gave_state() -> None:
    assert mark({"resultType": "input_required", "requestState": "abc"})["requestState"] == "u:abc"  # type: ignore[index]
    assert mark({"resultType": "input_required"})["requestState"] == "n"  # type: ignore[index]
    final = {"resultType": "complete", "requestState": "abc"}
    assert mark(final) is final
    # Handlers may return typed results as well as dicts.
    question = types.ElicitRequest(
        params=types.ElicitRequestFormParams(message="?", requested_schema={"type": "object", "properties": {}})
    )
    typed = types.InputRequiredResult(input_requests={"q": question}, request_state="abc")
    marked = mark(typed)
    assert isinstance(marked, types.InputRequiredResult) and marked.request_state == "u:abc"
    assert marked.input_requests == typed.input_requests and typed.request_state == "abc"
    assert mark(typed.model_copy(update={"request_state": None})).request_state == "n"  # type: ignore[union-attr]
    done = types.CallToolResult(content=[])
    assert mark(done) is done


def test_unmark_restores_the_upstreams_own_state() -> None:
    assert unmark_params({"requestState": "u:abc", "name": "t"}) == {"requestState": "abc", "name": "t"}
    assert unmark_params({"requestState": "u:"}) == {"requestState": ""}
    assert unmark_params({"requestState": "n", "name": "t"}) == {"name": "t"}
    untouched = {"name": "t"}
    assert unmark_params(untouched) is untouched and unmark_params(None) is None
    odd = {"requestState": 5}
    assert unmark_params(odd) is odd


def test_oversized_upstream_state_is_an_internal_error(caplog: pytest.LogCaptureFixture) -> None:
    check_size({"resultType": "input_required", "requestState": "x" * MAX_ENVELOPE_CHARS})
    check_size({"resultType": "complete", "requestState": "x" * (MAX_ENVELOPE_CHARS + 1)})
    with pytest.raises(MCPError) as too_big:
        check_size({"resultType": "input_required", "requestState": "x" * (MAX_ENVELOPE_CHARS + 1)})
    assert too_big.value.error.code == INTERNAL_ERROR and str(MAX_ENVELOPE_CHARS) in too_big.value.error.message
    # The operator's log says how large it was.
    logged = [r.getMessage() for r in caplog.records if r.name == "mcp_gateway.request_state"]
    assert logged == [f"an upstream's requestState is too large to relay ({MAX_ENVELOPE_CHARS + 1} characters sealed)"]
    # Typed results are measured as well as dicts.
    question = types.ElicitRequest(
        params=types.ElicitRequestFormParams(message="?", requested_schema={"type": "object", "properties": {}})
    )
    typed = types.InputRequiredResult(input_requests={"q": question}, request_state="x" * MAX_ENVELOPE_CHARS)
    check_size(typed)
    with pytest.raises(MCPError) as typed_too_big:
        check_size(typed.model_copy(update={"request_state": "x" * (MAX_ENVELOPE_CHARS + 1)}))
    assert typed_too_big.value.error.code == INTERNAL_ERROR


def test_the_sdk_refusal_is_reworded_and_others_pass_through() -> None:
    reworded = refusal(MCPError(code=INVALID_PARAMS, message="Invalid or expired requestState", data={"x": 1}))
    assert reworded.error.message == REFUSAL and reworded.error.code == INVALID_PARAMS
    assert reworded.error.data == {"x": 1}
    other = MCPError(code=INVALID_PARAMS, message="something else")
    assert refusal(other) is other
