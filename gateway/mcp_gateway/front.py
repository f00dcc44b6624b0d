"""The profile endpoint `/{profile_id}/mcp`: everything that happens before
a request reaches the profile's MCP server.

Order: Origin (403) -> auth (401/403) -> profile lookup (404; an unknown profile is
refused like an apiKey profile first, so ids cannot be enumerated) -> size limit
(413) -> JSON-RPC shape (400) -> header/body agreement (400) -> session token
(404 when invalid) -> rate limit (429) -> tool policy and quota (tools/call)
-> the profile's MCP backend. Credentials are stripped before forwarding.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any, cast

from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp_common import peek, tracing
from mcp_types import HEADER_MISMATCH, INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR
from mcp_types.version import (
    HANDSHAKE_PROTOCOL_VERSIONS,
    KNOWN_PROTOCOL_VERSIONS,
    LATEST_HANDSHAKE_VERSION,
    MODERN_PROTOCOL_VERSIONS,
)
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from mcp_gateway import errors
from mcp_gateway.audit import render_arguments
from mcp_gateway.auth import AuthFailure, Principal
from mcp_gateway.body_limit import TooLarge, read_body, replay
from mcp_gateway.config import Profile, RoutingConfig
from mcp_gateway.connections.inject import prepare_request as prepare_connection_request
from mcp_gateway.connections.inject import upstream_bearer
from mcp_gateway.context import CallContext, current_call
from mcp_gateway.discovery.serve import Answer, asks_for_full_list, route
from mcp_gateway.jsonrpc import MessageRejected, check_routing_headers, tool_name, validate_message
from mcp_gateway.limits import LimitExceeded, LimitsUnavailable, limit_data
from mcp_gateway.request_state import gateway_minted
from mcp_gateway.rules import Kind, Verdict, subject_of
from mcp_gateway.runtime import Gateway
from mcp_gateway.session_ops import SUBSCRIPTION_METHODS, local_origin, session_request
from mcp_gateway.sessions import SessionInfo
from mcp_gateway.store.base import AuditRecord
from mcp_gateway.token_exchange import RETRY_AFTER as EXCHANGE_RETRY_AFTER
from mcp_gateway.token_exchange import ExchangeRefused, ExchangeUnavailable, exchange_for_request, exchanged_token
from mcp_gateway.trace import inbound_trace, trace_headers

log = logging.getLogger("mcp_gateway.front")

PROFILE_PATH = re.compile(r"^/([^/]{1,253})/mcp/?$")
# Credentials and identity never go further; trace context does, but only as validated (trace.py).
_STRIPPED = {
    b"authorization",
    b"x-api-key",
    b"cookie",
    b"mcp-session-id",
    b"x-mcp-caller",
    b"traceparent",
    b"tracestate",
}


def metadata_url(base: str, profile_id: str) -> str:
    """RFC 9728 metadata of a profile, under the gateway's public base URL."""
    return f"{base}/.well-known/oauth-protected-resource/{profile_id}/mcp"


# JSON-RPC methods counted under their own name in metrics (anything else is "other": bounded).
METRIC_METHODS = frozenset(
    {
        "initialize", "ping", "tools/list", "tools/call", "resources/list", "resources/read",
        "resources/templates/list", "prompts/list", "prompts/get", "server/discover", "completion/complete",
        "subscriptions/listen", "logging/setLevel", "notifications/initialized",
    }
)  # fmt: skip


class McpFront:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send, profile_id: str) -> None:
        if not tracing.enabled():
            await self._handle(scope, receive, send, profile_id)
            return
        # One SERVER span per MCP request, child of the client's traceparent (mcp_common/tracing.py),
        # with the tenant and profile from the start (one attribute update fewer per request).
        config = self.gw.holder.config
        profile = config.profile(profile_id)
        named = {tracing.TENANT: profile.tenant, tracing.PROFILE: profile.id} if profile else {}
        headers = Headers(scope=scope)
        parent: Mapping[str, str] = headers
        if "traceparent" not in headers and scope["method"] == "POST":
            # A 2026-07-28 client names its span in `params._meta` (SEP-414); the header wins when both are
            # there. The body is read ahead (within the same limit) and replayed unchanged to the checks below.
            peeked = await peek.peek(receive, config.gateway.max_request_bytes)
            receive = peek.replay(peeked, receive)
            body = peek.whole_body(peeked)
            if body is not None and b'"traceparent"' in body:  # parsed only when it can be there
                parent = tracing.meta_carrier(peek.json_object(body))
        with tracing.server_span(f"mcp {scope['method']}", parent, **named) as span:

            async def recorded(message: Message) -> None:
                if message["type"] == "http.response.start":
                    tracing.http_status(span, message["status"])
                await send(message)

            await self._handle(scope, receive, recorded, profile_id)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, profile_id: str) -> None:
        config = self.gw.holder.config
        profile = config.profile(profile_id)
        method = "-"
        status_box = {"status": 0}

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_box["status"] = message["status"]
            await send(message)

        try:
            if profile is None:
                await self._unknown(scope, receive, counting_send, profile_id)
                return
            method = await self._serve(scope, receive, counting_send, config, profile)
        except Exception:
            log.exception("unexpected error serving profile %s", profile_id)
            self.gw.metrics.error(profile, "internal")
            if status_box["status"] == 0:
                response = errors.error_response(500, errors.INTERNAL_ERROR, "internal gateway error; see gateway logs")
                await response(scope, receive, counting_send)
        finally:
            tenant = profile.tenant if profile else "unknown"
            pid = profile.id if profile else "unknown"
            status = status_box["status"]
            self.gw.metrics.requests.labels(tenant, pid, method, str(status)).inc()
            self._access_line(scope, pid, method, status)

    async def _unknown(self, scope: Scope, receive: Receive, send: Send, profile_id: str) -> None:
        """A profile that does not exist: refused like an `apiKey` profile until a valid key is shown.

        So an unauthenticated client cannot tell existing profile ids from made-up ones (both get
        the same 401 and challenge); only the holder of a valid API key learns it is unknown (404).
        """
        headers = Headers(scope=scope)
        refusal = self._check_origin(headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        try:
            await self.gw.authenticator.unknown_profile(headers)
        except AuthFailure as failure:
            await self._auth_refusal(failure)(scope, receive, send)
            return
        response = errors.error_response(
            404,
            errors.UNKNOWN_PROFILE,
            f"unknown profile {profile_id[:64]!r}: this gateway serves no such MCP endpoint; "
            "check the profile id in your client's URL",
        )
        await response(scope, receive, send)

    @staticmethod
    def _auth_refusal(failure: AuthFailure) -> Response:
        extra = {"WWW-Authenticate": failure.challenge} if failure.challenge else {}
        if failure.retry_after is not None:
            extra["Retry-After"] = str(failure.retry_after)
        codes = {401: errors.UNAUTHORIZED, 503: errors.IDP_UNAVAILABLE}
        code = codes.get(failure.status, errors.FORBIDDEN)
        return errors.error_response(failure.status, code, failure.message, headers=extra or None)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, config: RoutingConfig, profile: Profile) -> str:
        """Serve one request; return the JSON-RPC method for metrics (bounded: known methods or '-')."""
        request = Request(scope, receive)
        headers = request.headers
        refusal = self._check_origin(headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return "-"
        try:
            # Only an OIDC challenge names the metadata URL; building it costs a URL parse per request.
            oidc = "oidc" in profile.auth.accepted
            metadata = metadata_url(self.gw.public_base(str(request.base_url)), profile.id) if oidc else ""
            with tracing.child_span("mcp.gateway.auth"):
                principal = await self.gw.authenticator.authenticate(profile, headers, metadata)
        except AuthFailure as failure:
            self.gw.metrics.auth_failures.labels(profile.tenant, profile.id, str(failure.status)).inc()
            await self._auth_refusal(failure)(scope, receive, send)
            return "-"

        # An unknown MCP-Protocol-Version is refused by the SDK's entry (the spec's
        # UnsupportedProtocolVersionError, echoing the request id); nothing is charged for it.
        version = headers.get(MCP_PROTOCOL_VERSION_HEADER)
        known_version = version is None or version in KNOWN_PROTOCOL_VERSIONS

        message: dict[str, Any] | None = None
        if scope["method"] == "POST":
            if not errors.is_json_media_type(headers.get("content-type", "")):
                await errors.error_response(
                    415, INVALID_REQUEST, "Content-Type must be application/json for JSON-RPC messages"
                )(scope, receive, send)
                return "-"
            try:
                body = await read_body(receive, config.gateway.max_request_bytes)
            except TooLarge:
                await errors.error_response(
                    413, errors.TOO_LARGE, f"request body exceeds {config.gateway.max_request_bytes} bytes"
                )(scope, receive, send)
                return "-"
            try:
                message = validate_message(json.loads(body))
                check_routing_headers(message, headers, version in MODERN_PROTOCOL_VERSIONS)
            except (json.JSONDecodeError, UnicodeDecodeError):
                await errors.error_response(400, PARSE_ERROR, "the body is not valid JSON")(scope, receive, send)
                return "-"
            except RecursionError:
                await errors.error_response(400, PARSE_ERROR, "the body's JSON nests too deeply")(scope, receive, send)
                return "-"
            except MessageRejected as rejected:
                await errors.error_response(400, rejected.code, rejected.message, rejected.request_id)(
                    scope, receive, send
                )
                return "-"
            raw_receive, receive = receive, replay(body, receive)

        method = self._metric_method(message)
        session = self._session(headers, profile, principal, message)
        if tracing.enabled():  # the session's nonce, not its signed token (which the client presents)
            tracing.annotate_message(message, session[1].nonce if isinstance(session, tuple) and session[1] else None)
        if isinstance(session, Response):
            await session(scope, receive, send)
            return method
        session_headers, info = session
        if info is not None:
            if message is not None and message.get("method") in SUBSCRIPTION_METHODS and known_version:
                # Answered here, not by the backend: rate-limited here like any request (never charged).
                refusal = await self._admit(config, profile, principal, message)
                if refusal is not None:
                    await refusal(scope, receive, send)
                    return method
            # Policy rules read the caller from `current_call`: on `resources/subscribe`, and on the
            # GET stream, which holds the session's upstream subscriptions as its caller.
            token = current_call.set(CallContext(config, profile, principal, info, message))
            try:
                answered = await session_request(self.gw, info, scope["method"], message)
                if answered is not None:
                    await answered(scope, receive, send)
                    return method
            finally:
                current_call.reset(token)

        if message is not None and "method" in message and known_version:
            if profile.discovery.mode != "off":  # discovery/serve.py: meta-tools answered or rewritten
                full = asks_for_full_list(scope)
                routed = await route(self.gw, profile, message, scope["headers"], info, principal, full_list=full)
                if isinstance(routed, Answer):
                    # Rate-limited like any request, but not charged to the quota, whatever the allow list.
                    refusal = await self._admit(config, profile, principal, {"id": message["id"], "method": "-"})
                    await (refusal or await routed.respond())(scope, receive, send)
                    return method
                if routed is not None:
                    message, receive = routed.message, replay(routed.body, raw_receive)
                    scope = {**scope, "headers": routed.headers}
            refusal = await self._admit(config, profile, principal, message)
            if refusal is not None:
                await refusal(scope, receive, send)
                return method

        forwarded = dict(scope)
        forwarded["headers"] = self._forward_headers(scope, session_headers)
        send = self._with_session_id(send, profile, principal, message)
        backend = await self.gw.backends.get(profile)
        exchanged = await self._upstream_token(profile, principal, headers, message, backend)
        if isinstance(exchanged, Response):
            await exchanged(scope, receive, send)
            return method
        ctx = CallContext(config, profile, principal, info, message)
        connected = await self._connection_token(ctx, backend)
        if connected is not None:
            await connected(scope, receive, send)
            return method
        token = current_call.set(ctx)
        trace = inbound_trace.set(trace_headers(headers) or trace_headers(tracing.meta_carrier(message)))
        upstream_token = exchanged_token.set(exchanged)
        try:
            with self._relay_span(message):
                await backend(forwarded, receive, send)
        finally:
            exchanged_token.reset(upstream_token)
            inbound_trace.reset(trace)
            current_call.reset(token)
            upstream_bearer.set(None)
        return method

    async def _connection_token(self, ctx: CallContext, backend: Any) -> Response | None:
        """resources/read and prompts/get of an upstream with a per-user connection: the caller's token
        is set for the request (connections/inject.py); the JSON-RPC error when they must connect first."""
        if not any(u.connection for u in ctx.profile.upstreams):
            return None
        try:
            await prepare_connection_request(self.gw, ctx, getattr(backend, "upstream_of", None))
        except MCPError as exc:
            rid = (ctx.message or {}).get("id")
            return errors.error_response(200, exc.error.code, exc.error.message, rid, data=exc.error.data)
        return None

    async def _upstream_token(
        self, profile: Profile, principal: Principal, headers: Headers, message: dict[str, Any] | None, backend: Any
    ) -> tuple[str, str] | Response | None:
        """The caller's token exchanged for the upstream this request goes to (token_exchange.py), if it
        needs one; a refusal (-32003) or, when the provider could not be asked, a 503 with Retry-After."""
        if not any(u.token_exchange for u in profile.upstreams):
            return None
        rid = (message or {}).get("id")
        try:
            upstream_of = getattr(backend, "upstream_of", None)
            exchanges = self.gw.metrics.token_exchanges

            def counted(upstream: str, outcome: str) -> None:
                exchanges.labels(profile.tenant, profile.id, upstream, outcome).inc()

            exchanger = self.gw.exchanger
            return await exchange_for_request(exchanger, profile, principal, headers, message, upstream_of, counted)
        except ExchangeRefused as refused:
            log.info("token exchange refused", extra={"profile": profile.id, "reason": str(refused)})
            return errors.error_response(200, errors.FORBIDDEN, str(refused), rid, data={"reason": "tokenExchange"})
        except ExchangeUnavailable as down:
            retry = {"Retry-After": str(EXCHANGE_RETRY_AFTER)}
            return errors.error_response(503, errors.IDP_UNAVAILABLE, f"{down}; try again later", rid, headers=retry)

    @staticmethod
    def _relay_span(message: dict[str, Any] | None) -> AbstractContextManager[Any]:
        """The relay's span, except on a tool call: its CLIENT span to the upstream (the aggregator's) is the relay.

        One span fewer on the hot path (bench/tracing.py); other requests get an INTERNAL span.
        """
        if message is not None and message.get("method") == "tools/call":
            return nullcontext()
        return tracing.child_span("mcp.gateway.relay")

    def _access_line(self, scope: Scope, profile_id: str, method: str, status: int) -> None:
        """Refusals always get a line (at INFO); successful requests only with `--access-log`."""
        if status < 400 and not self.gw.access_log:
            return
        message = "request refused" if status >= 400 else "request"
        extra = {"profile": profile_id, "http_method": scope.get("method"), "method": method, "status": status}
        log.info(message, extra=extra)

    def _check_origin(self, headers: Headers) -> Response | None:
        origin = headers.get("origin")
        if origin is None:
            return None
        allowed = self.gw.holder.config.gateway.allowed_origins
        if origin in allowed or "*" in allowed or local_origin(origin, headers.get("host")):
            return None
        return errors.error_response(
            403,
            errors.FORBIDDEN,
            f"Origin {origin!r} is not allowed; add it to gateway.allowedOrigins in the routing config",
        )

    def _metric_method(self, message: dict[str, Any] | None) -> str:
        method = (message or {}).get("method")
        if method is None:
            return "-" if message is None else "response"
        return method if method in METRIC_METHODS else "other"

    def _session(
        self, headers: Headers, profile: Profile, principal: Principal, message: dict[str, Any] | None
    ) -> tuple[list[tuple[bytes, bytes]], SessionInfo | None] | Response:
        """Verify a handshake-era session token; return headers to add for the backend, and the session."""
        token = headers.get(MCP_SESSION_ID_HEADER)
        if token is None:
            return [], None
        info = self.gw.signer.verify(token)
        if (
            info is None
            or info.profile != profile.id
            or info.caller != principal.caller
            or info.nonce in self.gw.revoked
        ):
            return errors.error_response(
                404,
                INVALID_REQUEST,
                "session not found or expired: initialize a new session",
                (message or {}).get("id"),
            )
        if headers.get(MCP_PROTOCOL_VERSION_HEADER) is None:
            return [(MCP_PROTOCOL_VERSION_HEADER.encode(), info.protocol_version.encode())], info
        return [], info

    async def _admit(
        self, config: RoutingConfig, profile: Profile, principal: Principal, message: dict[str, Any]
    ) -> Response | None:
        with tracing.child_span("mcp.gateway.policy"):
            refused = await self._policy_refusal(profile, principal, message)
            if refused is not None:
                tracing.refused("policy", refused[1])  # the policy span...
        if refused is not None:
            tracing.refused("policy", refused[1])  # ...and the request's: an HTTP 200 refusal is still an error
            return refused[0]
        rid, name = message.get("id"), tool_name(message)
        charge = name is not None and not self._continuation(message)
        try:
            with tracing.child_span("mcp.gateway.limits"):
                await self.gw.limiter.admit(
                    config,
                    profile,
                    principal.caller,
                    rate=True,
                    charge=charge,
                    tool=name,
                    subject=subject_of(principal),
                )
        except LimitsUnavailable as unavailable:
            tracing.refused("store_unavailable")
            self.gw.metrics.error(profile, "store_unavailable")
            return errors.error_response(
                503,
                errors.STORE_UNAVAILABLE,
                str(unavailable),
                rid,
                headers={"Retry-After": str(unavailable.retry_after)},
            )
        except LimitExceeded as exceeded:
            tracing.refused(exceeded.kind)
            self.gw.metrics.limit_rejections.labels(profile.tenant, profile.id, exceeded.kind).inc()
            return errors.error_response(
                429,
                errors.RATE_LIMITED,
                str(exceeded),
                rid,
                headers={"Retry-After": str(exceeded.retry_after)},
                data=limit_data(exceeded),
            )
        return None

    async def _policy_refusal(
        self, profile: Profile, principal: Principal, message: dict[str, Any]
    ) -> tuple[Response, str] | None:
        """The profile's tool globs, then its CEL rules: a refusal and its span description, or None."""
        name = tool_name(message)
        if name is not None and not self.gw.policies.of(profile).allows_tool(name):
            # A JSON-RPC error inside an HTTP 200: logged here, as the status does not show it.
            log.info("tool call refused by policy", extra={"profile": profile.id, "tool": name[:128]})
            response = errors.error_response(
                200,
                INVALID_PARAMS,
                f"tool {name!r} is not available on profile {profile.id!r} (hidden by the profile's policy)",
                message.get("id"),
            )
            return response, "tool hidden by the profile's policy"
        return await self._rules_refusal(profile, principal, message)

    async def _rules_refusal(
        self, profile: Profile, principal: Principal, message: dict[str, Any]
    ) -> tuple[Response, str] | None:
        """The profile's CEL rules (rules.py) on a call, read or get, with its arguments.

        The refusal names the rule, never its expression. Lists are filtered further down
        (proxy.LivePolicy), without arguments.
        """
        rules = self.gw.policies.of(profile).rules
        target = _rule_target(message)
        if target is None or not rules.applies_to(target[0]):
            return None
        kind, name, arguments = target
        backend = await self.gw.backends.get(profile)
        upstream_of = getattr(backend, "upstream_of", None)
        upstream = upstream_of(kind, name) if upstream_of else ""
        verdict = rules.decide(kind, name, upstream, principal, arguments)
        if verdict.allowed:
            return None
        log.info(
            "request refused by policy rule",
            extra={"profile": profile.id, "kind": kind, "rule": verdict.rule or "-", "reason": verdict.reason},
        )
        self._count_refusal(profile, principal, kind, name, arguments, verdict)
        response = errors.error_response(
            200,
            errors.FORBIDDEN,
            f"{kind} {name[:128]!r} is not available to this caller on profile {profile.id!r}: {verdict.explain()}",
            message.get("id"),
            data={"rule": verdict.rule, "reason": verdict.reason},
        )
        return response, f"policy rule {verdict.rule or '(no allow rule)'}"

    def _count_refusal(
        self, profile: Profile, principal: Principal, kind: Kind, name: str, arguments: dict[str, Any], verdict: Verdict
    ) -> None:
        """A rule's refusal in the metrics and the audit log (tool, resource URI or prompt name), naming the rule."""
        rule = verdict.rule or NO_RULE
        self.gw.metrics.policy_refusals.labels(profile.tenant, profile.id, kind, rule, verdict.reason).inc()
        # A resource read carries no arguments; a prompt's are audited like a tool's.
        audited = None if kind == "resource" else arguments
        self.gw.audit.record(
            AuditRecord(
                tenant=profile.tenant,
                profile=profile.id,
                caller=principal.caller,
                tool=_audit_name(name, AUDIT_URI_CHARS if kind == "resource" else AUDIT_NAME_CHARS),
                outcome="policy_refused",
                latency_ms=0.0,
                arguments=render_arguments(audited, profile.policy.audit_arguments, self.gw.audit.arguments_key),
                error=verdict.explain(),
                identity=dict(principal.identity) if principal.identity else None,
                rule=verdict.rule,
                kind=kind,
            )
        )

    def _continuation(self, message: dict[str, Any]) -> bool:
        """Does this tool call carry a requestState the gateway sealed (it answers an input-required round)?

        Such a call is not charged here: once the envelope has been verified (bound to this profile,
        caller and request) it is charged only if that envelope was used before (request_state.py), so
        each round's retry is free once. Merely claiming to answer a round is charged like any call.
        """
        return gateway_minted(self.gw.state_codec, (message.get("params") or {}).get("requestState"))

    def _forward_headers(self, scope: Scope, extra: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        kept = [(k, v) for k, v in scope["headers"] if k.lower() not in _STRIPPED]
        return kept + extra

    def _with_session_id(
        self, send: Send, profile: Profile, principal: Principal, message: dict[str, Any] | None
    ) -> Send:
        """Attach a signed session id to a successful `initialize` answer."""
        if message is None or message.get("method") != "initialize":
            return send
        requested = (message.get("params") or {}).get("protocolVersion")
        version = requested if requested in HANDSHAKE_PROTOCOL_VERSIONS else LATEST_HANDSHAKE_VERSION
        capabilities = (message.get("params") or {}).get("capabilities")
        token = self.gw.signer.issue(profile.id, principal.caller, version, secrets.token_hex(8), capabilities)

        async def send_with_session(msg: Message) -> None:
            if msg["type"] == "http.response.start" and msg["status"] < 400:
                msg = dict(msg)
                msg["headers"] = [*msg.get("headers", []), (MCP_SESSION_ID_HEADER.encode(), token.encode())]
            await send(msg)

        return send_with_session


# The `rule` label of a refusal no single rule made (no allow rule matched): not a valid rule name.
NO_RULE = "(none)"
AUDIT_NAME_CHARS = 128  # of a refused tool's or prompt's name as the client sent it
AUDIT_URI_CHARS = 2048  # of a refused resource's URI: URIs are longer than names, and still bounded


def _audit_name(name: str, limit: int) -> str:
    """A name or URI as the client sent it (possibly guessed): bounded, and storable in PostgreSQL."""
    name = name.replace("\x00", "\ufffd")
    return name if len(name) <= limit else name[:limit] + "…"


_RULE_TARGETS = {
    "tools/call": ("name", "tool"),
    "prompts/get": ("name", "prompt"),
    "resources/read": ("uri", "resource"),
    # Handshake-era subscriptions are answered by the gateway (session_ops.py), after `_admit`:
    # judged here like a read, so a refusal names its rule and is counted and audited the same.
    "resources/subscribe": ("uri", "resource"),
}


def _rule_target(message: dict[str, Any]) -> tuple[Kind, str, dict[str, Any]] | None:
    """(kind, name, arguments) of a request policy rules judge with its arguments, else None."""
    method = message.get("method")
    params = message.get("params")
    if not isinstance(params, dict):
        return None
    key, kind = _RULE_TARGETS.get(str(method), ("", ""))
    name = params.get(key) if key else None
    if not isinstance(name, str):
        return None
    arguments = params.get("arguments")
    return cast(Kind, kind), name, arguments if isinstance(arguments, dict) else {}


__all__ = ["HEADER_MISMATCH", "PROFILE_PATH", "McpFront"]
