"""Gateway-sealed `requestState` for 2026-07-28 input-required rounds.

An upstream that needs input answers `tools/call` (or `prompts/get`,
`resources/read`) with an `InputRequiredResult` whose `requestState` the client
echoes on its retry. The upstream's state goes out wrapped in an envelope the
gateway seals (the SDK's `RequestStateBoundary`: AES-256-GCM, so it is also
unreadable) and binds to

- the profile (audience `mcp-gateway/<profile>`) and the caller (API key id,
  token subject, ...): a caller cannot replay another caller's or another
  tenant's state, nor one from another profile;
- the request (method, tool/prompt name or resource URI, arguments digest);
- an expiry (`TTL_SECONDS`).

Keys are derived from the session-signing keys (`MCP_GATEWAY_SESSION_KEYS`, or
the key replicas derive from the pepper): the first seals, all open, so
rotation works as for sessions, and any replica opens any replica's state.
Envelopes are at most `MAX_ENVELOPE_CHARS`, in both directions.

A refused envelope is a JSON-RPC error -32602 that says what to do; the
upstream never sees it.

A verified envelope on `tools/call` is handed to `on_continuation` before the
call goes upstream: the gateway charges quotas for a continuation only when its
envelope was used before (each round's retry is free once; a replayed envelope,
valid for an hour, would otherwise be unlimited uncharged upstream calls).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.request_state import (
    AESGCMRequestStateCodec,
    InvalidRequestState,
    RequestStateBoundary,
    RequestStateSecurity,
)
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS
from mcp_types.methods import INPUT_REQUIRED_METHODS, is_input_required

from mcp_gateway.context import current_call

log = logging.getLogger("mcp_gateway.request_state")

TTL_SECONDS = 3600.0  # a round may wait for a person to answer an elicitation
MAX_ENVELOPE_CHARS = 128 * 1024
_KEY_LABEL = b"mcp-gateway/request-state/v1"
_SDK_REFUSAL = "Invalid or expired requestState"
REFUSAL = (
    "Invalid or expired requestState: it was altered, has expired, or was issued to another caller, "
    "profile or request; call the tool (or prompt/resource) again without requestState to start over"
)


def state_codec(session_keys: list[bytes]) -> AESGCMRequestStateCodec:
    """The envelope codec, keyed from the session keys (a separate key per purpose, same rotation order)."""
    return AESGCMRequestStateCodec([hmac.new(k, _KEY_LABEL, hashlib.sha256).digest() for k in session_keys])


def gateway_minted(codec: AESGCMRequestStateCodec, state: Any) -> bool:
    """Is `state` an envelope this gateway sealed (for anyone)? Cheap: one AEAD check, no claims."""
    if not isinstance(state, str) or len(state) > MAX_ENVELOPE_CHARS:
        return False
    try:
        codec.unseal(state)
    except InvalidRequestState:
        return False
    return True


def _caller_binding(ctx: ServerRequestContext[Any, Any]) -> str:
    call = current_call.get()
    if call is None:  # every request reaches the backend through the front, which sets it
        return "unknown"
    return json.dumps([call.profile.id, call.principal.caller])


OnContinuation = Callable[[str], Awaitable[None]]


def boundary_for(codec: AESGCMRequestStateCodec, profile_id: str) -> RequestStateBoundary:
    """The SDK boundary sealing and verifying one profile's envelopes (bound to its caller and request)."""
    security = RequestStateSecurity(codec=codec, ttl=TTL_SECONDS, bind_principal=_caller_binding)
    return RequestStateBoundary(security, default_audience=f"mcp-gateway/{profile_id}")


def refusal(exc: MCPError) -> MCPError:
    """The SDK's terse refusal of an envelope, reworded to say what to do; other errors unchanged."""
    if exc.error.message == _SDK_REFUSAL:
        return MCPError(code=INVALID_PARAMS, message=REFUSAL, data=exc.error.data)
    return exc


class SealedRequestState:
    """Server middleware: opens inbound envelopes for the profile's MCP server, seals outbound state."""

    def __init__(self, codec: AESGCMRequestStateCodec, profile_id: str, on_continuation: OnContinuation) -> None:
        self.boundary = boundary_for(codec, profile_id)
        self.on_continuation = on_continuation

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method not in INPUT_REQUIRED_METHODS:
            return await call_next(ctx)
        inbound = (ctx.params or {}).get("requestState")
        if isinstance(inbound, str) and len(inbound) > MAX_ENVELOPE_CHARS:
            raise MCPError(code=INVALID_PARAMS, message=f"requestState exceeds {MAX_ENVELOPE_CHARS} characters")

        async def upstream(inner: ServerRequestContext[Any, Any]) -> HandlerResult:
            if ctx.method == "tools/call" and isinstance(inbound, str):
                await self.on_continuation(inbound)  # verified by now: the boundary opened it
            return mark(await call_next(_unmark(inner)))

        try:
            result = await self.boundary(ctx, upstream)
        except MCPError as exc:
            raise refusal(exc) from None
        check_size(result)
        return result


# Inside the envelope: "u:<upstream state>", or "n" when the upstream gave none. Every round the
# gateway hands out thus carries an envelope, so the front can tell a genuine continuation (not
# charged to quotas again) from a call that merely claims to be one.
def mark(result: HandlerResult) -> HandlerResult:
    if not is_input_required(result):
        return result
    if isinstance(result, Mapping):
        state = result.get("requestState")
        return {**result, "requestState": "n" if state is None else f"u:{state}"}
    state = result.request_state
    return result.model_copy(update={"request_state": "n" if state is None else f"u:{state}"})


def _unmark(ctx: ServerRequestContext[Any, Any]) -> ServerRequestContext[Any, Any]:
    params = unmark_params(ctx.params)
    return ctx if params is ctx.params else replace(ctx, params=params)


def unmark_params(params: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The params to send upstream: the upstream's own state in place of the opened envelope's content."""
    state = (params or {}).get("requestState")
    if params is None or not isinstance(state, str):
        return params
    unmarked = dict(params)
    if state.startswith("u:"):
        unmarked["requestState"] = state[2:]
    else:
        unmarked.pop("requestState")
    return unmarked


def check_size(result: HandlerResult) -> None:
    if not is_input_required(result):
        return
    state = result.get("requestState") if isinstance(result, Mapping) else result.request_state
    if isinstance(state, str) and len(state) > MAX_ENVELOPE_CHARS:
        log.error("an upstream's requestState is too large to relay (%d characters sealed)", len(state))
        raise MCPError(
            code=INTERNAL_ERROR,
            message=f"the upstream's requestState is too large for the gateway to relay (over {MAX_ENVELOPE_CHARS} "
            "characters sealed); the upstream should keep less state per round",
        )
