"""OpenTelemetry spans for the gateway and the adapter: off unless the standard `OTEL_*` variables ask for them.

`setup(service)` installs a tracer provider with an OTLP/HTTP exporter only when
`OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set or
`OTEL_TRACES_EXPORTER` names `otlp` or `console` (`none` always wins). Everything else
(sampler, batch delays, headers, resource attributes) is read by the SDK from its own
`OTEL_*` variables. When tracing is off, the helpers here return one shared no-op
context manager after a single boolean check: no span, no context switch, no import of
the SDK.

Attributes name *what* was called (method, tool, session id, tenant, profile, upstream),
never arguments, results or credentials. Refusals and errors set the span status.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator, Mapping
from random import getrandbits
from typing import TYPE_CHECKING, Any

from mcp_common import jsonlog

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

    from mcp_common.span_recorder import LightSpan, Recorder

log = logging.getLogger("mcp_common.tracing")

# OpenTelemetry semantic conventions for MCP (gen-ai) where they exist; ours under `mcp.gateway.*`.
METHOD = "mcp.method.name"
TOOL = "gen_ai.tool.name"
SESSION = "mcp.session.id"
REQUEST_ID = "jsonrpc.request.id"
TENANT = "mcp.gateway.tenant"
PROFILE = "mcp.gateway.profile"
UPSTREAM = "mcp.gateway.upstream"
REFUSAL = "mcp.gateway.refusal"
HTTP_STATUS = "http.response.status_code"

_NOOP: contextlib.nullcontext[None] = contextlib.nullcontext()
_VERSION_00 = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}\Z")
_tracer: Tracer | None = None


def wanted(env: Mapping[str, str] = os.environ) -> bool:
    """Do the standard variables ask for traces?"""
    exporters = {e.strip().lower() for e in env.get("OTEL_TRACES_EXPORTER", "").split(",") if e.strip()}
    if "none" in exporters or env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return bool(exporters & {"otlp", "console"}) or bool(endpoint)


def setup(service: str) -> bool:
    """Install the tracer provider for this process if tracing is wanted; return whether it is on."""
    global _tracer
    if _tracer is not None or not wanted():
        return _tracer is not None
    # Imported here: a process without tracing never loads the SDK or the exporter.
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from mcp_common.span_recorder import Recorder

    for header in os.environ.get("OTEL_EXPORTER_OTLP_HEADERS", "").split(","):
        jsonlog.register_secret(header.partition("=")[2].strip())  # a collector's credentials never reach logs
    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES still override the default name.
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    names = {e.strip().lower() for e in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")}

    def exporters() -> list[SpanExporter]:
        made: list[SpanExporter] = [ConsoleSpanExporter()] if "console" in names else []
        if "otlp" in names or "console" not in names:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            made.append(OTLPSpanExporter())
        return made

    # Other instrumentations' spans (the MCP SDK's) go through the SDK's batch processor; ours through
    # span_recorder.py, with exporters of its own (each is used by one thread only).
    for exporter in exporters():
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    global _otel
    _tracer = provider.get_tracer("mcp-gateway")
    _otel = _Otel(provider.sampler, Recorder(exporters(), provider.resource, InstrumentationScope("mcp-gateway")))
    log.info("OpenTelemetry tracing on", extra={"service": service})
    return True


def enabled() -> bool:
    return _tracer is not None


class _Otel:
    """The SDK objects the hot path uses, bound once by `setup` (no per-call imports or lookups)."""

    def __init__(self, sampler: Any, recorder: Recorder) -> None:
        from opentelemetry import context, trace
        from opentelemetry.sdk.trace.sampling import DEFAULT_ON
        from opentelemetry.trace import (
            NonRecordingSpan,
            SpanContext,
            SpanKind,
            Status,
            StatusCode,
            TraceFlags,
            TraceState,
        )
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        from mcp_common.span_recorder import LightSpan

        self.attach, self.detach = context.attach, context.detach
        self.in_context, self.current = trace.set_span_in_context, trace.get_current_span
        self.propagator = TraceContextTextMapPropagator()
        self.server, self.client, self.internal = SpanKind.SERVER, SpanKind.CLIENT, SpanKind.INTERNAL
        self.status, self.error, self.ok = Status, StatusCode.ERROR, StatusCode.OK
        self.sampler, self.recorder, self.light = sampler, recorder, LightSpan
        # The SDK's default sampler (parent-based, always on) decides from the parent's sampled flag alone:
        # with it, no sampler call per request (`_light`).
        self.default_sampler = sampler.get_description() == DEFAULT_ON.get_description()
        self.trace_state = TraceState.from_header

        def remote(trace_id: int, span_id: int, flags: int, state: Any) -> Any:
            """The context of a caller's span (what the propagator's `extract` returns)."""
            return trace.set_span_in_context(
                NonRecordingSpan(SpanContext(trace_id, span_id, True, TraceFlags(flags), state))
            )

        self.remote = remote


_otel: _Otel | None = None


def _parent(headers: Mapping[str, str]) -> Any:
    """The caller's trace context, or None (the current one) when it sent none: no extraction then."""
    assert _otel is not None
    parent = headers.get("traceparent")
    if parent is None:
        return None
    state = headers.get("tracestate")
    if _VERSION_00.match(parent):  # the usual case, parsed here: the propagator's regex and checks cost ~4 µs
        trace_id, span_id = int(parent[3:35], 16), int(parent[36:52], 16)
        if not trace_id or not span_id:
            return None  # invalid: a new trace, as the propagator would start
        return _otel.remote(trace_id, span_id, int(parent[53:55], 16), _otel.trace_state([state]) if state else None)
    carrier = {"traceparent": parent}
    if state is not None:
        carrier["tracestate"] = state
    return _otel.propagator.extract(carrier)


def meta_carrier(message: Mapping[str, Any] | None) -> dict[str, str]:
    """The W3C trace context a JSON-RPC request carries in `params._meta`, as a carrier ({} when none).

    SEP-414 (and the OpenTelemetry conventions for MCP) put `traceparent` and `tracestate` there
    unprefixed: how a 2026-07-28 client, whose requests stand alone, names its span. The values
    are checked where they are used (the propagator, or trace.py in the gateway).
    """
    params = message.get("params") if message is not None else None
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict) or not isinstance(meta.get("traceparent"), str):
        return {}
    carrier = {"traceparent": meta["traceparent"]}
    if isinstance(meta.get("tracestate"), str):
        carrier["tracestate"] = meta["tracestate"]
    return carrier


class _Span:
    """One span made current for a `with` block.

    A plain class rather than the SDK's `start_as_current_span`: that stacks two generator-based
    context managers per span, a measurable share of a call's tracing cost (bench/tracing.py).
    No exception events: an exception's message could quote what a client sent.
    """

    __slots__ = ("_attributes", "_kind", "_name", "_parent", "_span", "_token")

    def __init__(self, name: str, kind: Any, parent: Any, attributes: Mapping[str, Any] | None) -> None:
        self._name, self._kind, self._parent, self._attributes = name, kind, parent, attributes
        self._span: Any = None
        self._token: Any = None

    def __enter__(self) -> Span:
        assert _tracer is not None and _otel is not None
        span = _tracer.start_span(
            self._name,
            self._parent,
            self._kind,
            self._attributes,
            record_exception=False,
            set_status_on_exception=False,
        )
        self._span = span
        self._token = _otel.attach(_otel.in_context(span))
        return span

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        assert _otel is not None
        span = self._span
        try:
            if kind is not None and span.is_recording() and span.status.status_code is not _otel.ok:
                span.set_status(_otel.status(_otel.error, kind.__name__))
        finally:
            _otel.detach(self._token)
            span.end()


def _light(name: str, kind: Any, parent: Any, attributes: dict[str, Any] | None) -> LightSpan | None:
    """Our span, recorded by span_recorder.py; None when the sampler drops it (the SDK's tracer makes it then).

    A child of one of our spans is recorded like its parent, with no sampler call (the default samplers
    are parent-based); any other span (a request's SERVER span, a child of a remote or foreign parent)
    asks the provider's sampler once.
    """
    assert _otel is not None
    current = _otel.current(parent)  # parent None: the current context's span
    if isinstance(current, _otel.light):
        return current.child(name, kind, attributes)
    context = current.get_span_context()
    valid = context.is_valid
    trace_id = context.trace_id if valid else (getrandbits(128) or 1)
    state = context.trace_state if valid else None
    if _otel.default_sampler:
        if valid and not context.trace_flags.sampled:
            return None
    else:
        decision = _otel.sampler.should_sample(parent, trace_id, name, kind, attributes)
        if not decision.decision.is_sampled():
            return None
        if decision.attributes:
            attributes = {**(attributes or {}), **decision.attributes}
        if decision.trace_state is not None:
            state = decision.trace_state
    parent_id = context.span_id if valid else 0
    return _otel.light(_otel.recorder, name, kind, trace_id, parent_id, valid and context.is_remote, state, attributes)


def server_span(name: str, headers: Mapping[str, str], **attributes: Any) -> contextlib.AbstractContextManager[Any]:
    """One incoming MCP request: a SERVER span, child of the caller's `traceparent` when it sent a valid one."""
    if _tracer is None or _otel is None:
        return _NOOP
    parent = _parent(headers)
    return _light(name, _otel.server, parent, attributes or None) or _Span(
        name, _otel.server, parent, attributes or None
    )


def child_span(name: str, client: bool = False, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
    """A step inside the current request (auth, limits, a call out when `client`)."""
    if _tracer is None or _otel is None:
        return _NOOP
    kind = _otel.client if client else _otel.internal
    return _light(name, kind, None, attributes or None) or _Span(name, kind, None, attributes or None)


@contextlib.contextmanager
def _attached(headers: Mapping[str, str]) -> Iterator[None]:
    assert _otel is not None
    token = _otel.attach(_parent(headers))
    try:
        yield
    finally:
        _otel.detach(token)


def within(headers: Mapping[str, str] | None) -> contextlib.AbstractContextManager[Any]:
    """Make the trace context of these request headers current (a handler running in another task than its request)."""
    if _tracer is None or headers is None or "traceparent" not in headers:
        return _NOOP
    return _attached(headers)


def outgoing() -> list[tuple[str, str]]:
    """W3C headers naming the current span as parent of a request made now ([] when tracing is off)."""
    if _otel is None:
        return []
    current = _otel.current()
    if isinstance(current, _otel.light):
        return current.traceparent()
    carrier: dict[str, str] = {}
    _otel.propagator.inject(carrier)
    return list(carrier.items())


def flush() -> None:
    """Export every span ended so far (tests and benchmarks; shutdown does it by itself)."""
    if _otel is None:
        return
    from opentelemetry import trace

    _otel.recorder.flush()
    trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]


def annotate(**attributes: Any) -> None:
    """Add attributes (None values skipped) to the current span; nothing when tracing is off."""
    if _otel is None:
        return
    span = _otel.current()
    if span.is_recording():
        span.set_attributes({k: v for k, v in attributes.items() if v is not None})


def annotate_message(message: Mapping[str, Any] | None, session_id: str | None = None, **more: Any) -> None:
    """The MCP attributes of a JSON-RPC request (method, tool name, request id, session id) and `more`, in one update.

    The span is renamed per the semantic conventions: "{mcp.method.name} {target}".
    """
    if _otel is None or message is None:
        return
    span = _otel.current()
    if not span.is_recording():  # not sampled: build nothing
        return
    method = message.get("method")
    attributes = {k: v for k, v in more.items() if v is not None}
    if isinstance(method, str):
        attributes[METHOD] = method
        params = message.get("params")
        name = params.get("name") if method == "tools/call" and isinstance(params, dict) else None
        if isinstance(name, str):
            attributes[TOOL] = name[:128]
            span.update_name(f"{method} {name[:128]}")
        else:
            span.update_name(method[:64])
    rid = message.get("id")
    if isinstance(rid, str | int) and not isinstance(rid, bool):
        attributes[REQUEST_ID] = str(rid)[:64]
    if session_id is not None:
        attributes[SESSION] = session_id
    span.set_attributes(attributes)


def refused(reason: str, description: str = "") -> None:
    """Mark the current span as a refusal (error status) with a bounded reason."""
    if _otel is None:
        return
    span = _otel.current()
    if span.is_recording():
        span.set_attribute(REFUSAL, reason)
        span.set_status(_otel.status(_otel.error, description or reason))


def http_status(span: Span | None, status: int) -> None:
    """Record the HTTP status of a server span; 4xx/5xx are errors (refusals or failures)."""
    if _otel is None or span is None or not span.is_recording():
        return
    span.set_attribute(HTTP_STATUS, status)
    if status >= 400:
        span.set_status(_otel.status(_otel.error, f"HTTP {status}"))
