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
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from mcp_common import jsonlog

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

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
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    for header in os.environ.get("OTEL_EXPORTER_OTLP_HEADERS", "").split(","):
        jsonlog.register_secret(header.partition("=")[2].strip())  # a collector's credentials never reach logs
    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES still override the default name.
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    exporters = {e.strip().lower() for e in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")}
    if "console" in exporters:
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    if "otlp" in exporters or "console" not in exporters:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _tracer = provider.get_tracer("mcp-gateway")
    log.info("OpenTelemetry tracing on", extra={"service": service})
    return True


def enabled() -> bool:
    return _tracer is not None


def _parent(headers: Mapping[str, str]) -> Any:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract(
        {k: headers[k] for k in ("traceparent", "tracestate") if k in headers}
    )


@contextlib.contextmanager
def _span(name: str, kind: Any, context: Any, attributes: Mapping[str, Any]) -> Iterator[Span]:
    from opentelemetry.trace import Status, StatusCode

    assert _tracer is not None
    # No exception events: an exception's message could quote what a client sent.
    with _tracer.start_as_current_span(
        name,
        context=context,
        kind=kind,
        attributes=dict(attributes),
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except BaseException as exc:
            if span.is_recording() and not _is_ok_status(span):
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise


def _is_ok_status(span: Any) -> bool:
    from opentelemetry.trace import StatusCode

    status = getattr(span, "status", None)
    return status is not None and status.status_code == StatusCode.OK


def server_span(name: str, headers: Mapping[str, str], **attributes: Any) -> contextlib.AbstractContextManager[Any]:
    """One incoming MCP request: a SERVER span, child of the caller's `traceparent` when it sent a valid one."""
    if _tracer is None:
        return _NOOP
    from opentelemetry.trace import SpanKind

    return _span(name, SpanKind.SERVER, _parent(headers), attributes)


def child_span(name: str, client: bool = False, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
    """A step inside the current request (auth, limits, a call out when `client`)."""
    if _tracer is None:
        return _NOOP
    from opentelemetry.trace import SpanKind

    return _span(name, SpanKind.CLIENT if client else SpanKind.INTERNAL, None, attributes)


@contextlib.contextmanager
def _attached(headers: Mapping[str, str]) -> Iterator[None]:
    from opentelemetry import context

    token = context.attach(_parent(headers))
    try:
        yield
    finally:
        context.detach(token)


def within(headers: Mapping[str, str] | None) -> contextlib.AbstractContextManager[Any]:
    """Make the trace context of these request headers current (a handler running in another task than its request)."""
    if _tracer is None or headers is None or "traceparent" not in headers:
        return _NOOP
    return _attached(headers)


def outgoing() -> list[tuple[str, str]]:
    """W3C headers naming the current span as parent of a request made now ([] when tracing is off)."""
    if _tracer is None:
        return []
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return list(carrier.items())


def annotate(**attributes: Any) -> None:
    """Add attributes (None values skipped) to the current span; nothing when tracing is off."""
    if _tracer is None:
        return
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({k: v for k, v in attributes.items() if v is not None})


def annotate_message(message: Mapping[str, Any] | None, session_id: str | None = None) -> None:
    """The MCP attributes of a JSON-RPC request: method, tool (or prompt) name, request id, session id."""
    if _tracer is None or message is None:
        return
    params = message.get("params")
    name = params.get("name") if isinstance(params, dict) and message.get("method") == "tools/call" else None
    rid = message.get("id")
    method = message.get("method") if isinstance(message.get("method"), str) else None
    tool = name[:128] if isinstance(name, str) else None
    annotate(
        **{
            METHOD: method,
            TOOL: tool,
            REQUEST_ID: str(rid)[:64] if isinstance(rid, str | int) and not isinstance(rid, bool) else None,
            SESSION: session_id,
        }
    )
    if method is not None:  # the semantic conventions' span name: "{mcp.method.name} {target}"
        from opentelemetry import trace

        trace.get_current_span().update_name(f"{method} {tool}" if tool else method[:64])


def refused(reason: str, description: str = "") -> None:
    """Mark the current span as a refusal (error status) with a bounded reason."""
    if _tracer is None:
        return
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(REFUSAL, reason)
        span.set_status(Status(StatusCode.ERROR, description or reason))


def http_status(span: Span | None, status: int) -> None:
    """Record the HTTP status of a server span; 4xx/5xx are errors (refusals or failures)."""
    if span is None or not span.is_recording():
        return
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute(HTTP_STATUS, status)
    if status >= 400:
        span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
