"""The fast path for 2026-07-28 `tools/call`: the request's bytes go to the upstream that owns the tool.

A 2026-07-28 tool call is one self-contained POST, and so is the upstream's answer.
On the SDK path the gateway decodes it into models, runs it through an MCP server
and a client session, and encodes it again on both sides: most of its CPU per
call. Once the front has authenticated the caller and applied policy, rate
limits and quotas, a first-round call of a tool whose upstream speaks 2026-07-28
is relayed instead, with the adapter's relay (`mcp_adapter.passthrough`, which
the adapter uses for the same purpose): the body is forwarded with only
`params.name` rewritten when the profile prefixed the tool, over the upstream
source's pooled HTTP client; the answer (JSON, or SSE relayed event by event)
goes back with the gateway's `serverInfo` stamp. Only the MCP routing headers,
`Accept` and `Mcp-Param-*` are forwarded, never the client's credentials; the
relay client's header hook adds the validated trace context and
`x-mcp-caller: <tenant>/<caller>` (trace.py).

Kept as on the SDK path, through the same interceptor (`ProfileBackend.intercept`):
per-profile and per-tool timeouts, retries, audit records and metrics. Added here:

- an `input_required` answer gets the gateway's sealed envelope around the
  upstream's `requestState` (request_state.py), bound to profile, caller and
  request, exactly as the SDK path's middleware seals it;
- a relay failure after the request was sent (a reset connection, a stream that
  ended early: `RelayError.sent`) is an upstream error, retried only for tools the
  profile marks idempotent; a connect failure stays "unavailable" (unsent, retried).

Everything else takes the SDK path: other methods and eras, calls carrying a
`requestState` (they answer a round: the envelope is opened, verified and
settled by the SDK path's middleware; a person answers those, so speed does not
matter), tools of upstreams that did not negotiate 2026-07-28 or are not
connected, and anything the relay is not sure about.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import mcp_types as types
from mcp.shared.exceptions import MCPError
from mcp_adapter.aggregate import Aggregator, Interceptor, Proceed, ToolCall, ToolResult
from mcp_adapter.passthrough import PassThrough, RelayError
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_gateway import errors
from mcp_gateway.request_state import check_size, mark

if TYPE_CHECKING:
    from mcp.server.request_state import RequestStateBoundary

# The front has enforced gateway.maxRequestBytes before a request gets here.
_NO_EXTRA_LIMIT = 2**31


def relayable(message: dict[str, Any] | None) -> bool:
    """A first-round `tools/call` (one that answers no input-required round)?"""
    if message is None or message.get("method") != "tools/call":
        return False
    params = message.get("params")
    return isinstance(params, dict) and params.get("requestState") is None and params.get("inputResponses") is None


@dataclass(frozen=True)
class _Wire:
    """What the SDK's requestState boundary reads of a request context: its method and params."""

    method: str
    params: dict[str, Any] | None


class _RelayView:
    """The profile's aggregator as the relay sees it: the same catalog, policy and sources, and an
    interceptor that also seals input-required answers."""

    def __init__(self, aggregator: Aggregator, interceptor: Interceptor) -> None:
        self._aggregator = aggregator
        self.interceptor = interceptor

    @property
    def catalog(self) -> Any:
        return self._aggregator.catalog

    @property
    def policy(self) -> Any:
        return self._aggregator.policy

    @property
    def sources(self) -> Any:
        return self._aggregator.sources


class GatewayRelay:
    """ASGI app for a profile's 2026-07-28 POSTs: relays first-round tool calls, hands the rest to `app`."""

    def __init__(
        self,
        app: ASGIApp,
        aggregator: Aggregator,
        interceptor: Interceptor,
        server_info: Any,
        boundary: RequestStateBoundary,
        relayed: Callable[[], None],
    ) -> None:
        self._boundary = boundary
        self._relayed = relayed
        self._intercept = interceptor
        view = _RelayView(aggregator, self._sealing_intercept)
        self._relay = PassThrough(
            app,
            cast(Aggregator, view),
            server_info,
            trust_caller_header=False,
            max_body_bytes=_NO_EXTRA_LIMIT,
            count_calls=False,  # the interceptor counts them in the gateway's own metrics
            own_exchanges=False,  # an adapter's rounds are its own, resumed through it (handshake_relay.py)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._relay(scope, receive, send)

    async def _sealing_intercept(self, call: ToolCall, proceed: Proceed) -> ToolResult:
        result = await self._intercept(call, self._counted(_sent_is_not_unavailable(proceed)))
        if isinstance(result, types.InputRequiredResult):
            return await self._seal(call, result)
        return result

    def _counted(self, proceed: Proceed) -> Proceed:
        async def counted() -> ToolResult:
            self._relayed()
            return await proceed()

        return counted

    async def _seal(self, call: ToolCall, result: types.InputRequiredResult) -> ToolResult:
        """The gateway's envelope around the upstream's state, bound as the SDK path binds it."""

        async def upstream(_: Any) -> Any:
            return mark(result)

        wire = _Wire("tools/call", {"name": call.name, "arguments": call.arguments})
        sealed = await self._boundary(cast(Any, wire), upstream)
        check_size(sealed)
        return cast(types.InputRequiredResult, sealed)


def _sent_is_not_unavailable(proceed: Proceed) -> Proceed:
    """A relayed call that failed after it was sent is the gateway's upstream error, never "unavailable"."""

    async def guarded() -> ToolResult:
        try:
            return await proceed()
        except RelayError as exc:
            if exc.sent:
                raise MCPError(code=errors.UPSTREAM_ERROR, message=exc.error.message) from None
            raise

    return guarded
