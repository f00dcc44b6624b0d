"""Our own spans, recorded cheaply on the request path and exported by the SDK's exporters off it.

The SDK's `Tracer.start_span` does per span what our few, fixed spans do not need: a sampler call,
attribute validation under a lock, links and events containers, a read-only copy at the end and
a locked hand-over to the batch processor (~40 µs a span on this 2-core machine, paced like
requests; bench/README.md, "Tracing cost"). A `LightSpan` here is one slotted object: ids from
`random.getrandbits` (as the SDK's id generator), two clock reads, a dict of attributes we set
ourselves (bounded strings and numbers), made current through the OpenTelemetry context (so
propagation, `get_current_span` and other instrumentations' spans, such as the MCP SDK's, see it)
and queued whole when it ends. A daemon thread turns queued spans into the SDK's `ReadableSpan`s
and hands batches to the SDK's exporters (OTLP/HTTP, console), on the schedule and within the
bounds of the standard `OTEL_BSP_*` variables.

Sampling stays the SDK's: the tracer provider's sampler (`OTEL_TRACES_SAMPLER`) decides once per
SERVER span; its children follow (what the default parent-based samplers do). An unsampled request
or a span with no recorded parent goes through the SDK's own tracer (tracing.py).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from random import getrandbits
from typing import Any

from opentelemetry.context import attach, detach
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

log = logging.getLogger("mcp_common.tracing")

SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_VALUE_TYPES = (str, bool, int, float)
_OK, _ERROR, _UNSET = StatusCode.OK, StatusCode.ERROR, StatusCode.UNSET


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.isdigit() and int(value) > 0 else default


class Recorder:
    """Finished spans queued as they are; a daemon thread converts and exports them in batches."""

    def __init__(self, exporters: Sequence[SpanExporter], resource: Resource, scope: InstrumentationScope) -> None:
        self.exporters, self.resource, self.scope = list(exporters), _HashedOnce(resource), scope
        # The batch span processor's standard variables and defaults (ms, spans).
        self.delay = _env_int("OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000
        self.batch = _env_int("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)
        self.limit = _env_int("OTEL_BSP_MAX_QUEUE_SIZE", 2048)
        self._start()
        atexit.register(self.shutdown)
        # A forked child exports its own spans, with a thread of its own.
        os.register_at_fork(after_in_child=self._start)

    def _start(self) -> None:
        self.queue: deque[LightSpan] = deque()
        self.dropped = 0
        self._wake = threading.Event()
        self._draining = threading.Lock()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="mcp-span-export", daemon=True)
        self._thread.start()

    def add(self, span: LightSpan) -> None:
        queue = self.queue
        if len(queue) >= self.limit:
            self.dropped += 1  # like the batch processor: a full queue drops, never blocks a request
            return
        queue.append(span)
        if len(queue) == self.batch:  # once per batch: Event.set takes a lock
            self._wake.set()

    def flush(self) -> None:
        """Export everything queued now (tests, benchmarks and shutdown)."""
        self._drain(everything=True)

    def shutdown(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._wake.set()
        self._thread.join(timeout=10)
        self._drain(everything=True)
        for exporter in self.exporters:
            exporter.shutdown()

    def _run(self) -> None:
        while not self._stopped:
            full = self._wake.wait(self.delay)
            self._wake.clear()
            # Woken by a full batch: full batches only, so spans ended during an export wait for the next
            # batch or tick instead of going out a few at a time (one HTTP request each). The tick: all of them.
            self._drain(everything=not full)

    def _drain(self, everything: bool) -> None:
        with self._draining:
            queue = self.queue
            while queue and (everything or len(queue) >= self.batch):
                batch = [queue.popleft() for _ in range(min(self.batch, len(queue)))]
                readable = [span.readable(self.resource, self.scope) for span in batch]
                for exporter in self.exporters:
                    try:
                        exporter.export(readable)
                    except Exception:  # an exporter's failure never reaches a request
                        log.warning("span export failed", exc_info=True)
            if self.dropped:
                log.warning("span queue full: dropped spans", extra={"dropped": self.dropped})
                self.dropped = 0


class _HashedOnce(Resource):
    """The process's resource, its hash computed once: the OTLP encoder groups spans by resource, hashing it per
    span, and `Resource.__hash__` serializes every attribute to JSON each time (~10 µs a span)."""

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource.attributes, resource.schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or super().__eq__(other)


class LightSpan(Span):
    """One recorded span, also its own context manager (made current on enter, ended and queued on exit).

    No exception events: an exception's message could quote what a client sent.
    """

    __slots__ = (
        "_context",
        "_recorder",
        "_token",
        "attributes",
        "end_ns",
        "kind",
        "name",
        "parent_id",
        "parent_remote",
        "span_id",
        "start_ns",
        "status_code",
        "status_description",
        "trace_id",
        "trace_state",
    )

    def __init__(
        self,
        recorder: Recorder,
        name: str,
        kind: SpanKind,
        trace_id: int,
        parent_id: int,
        parent_remote: bool,
        trace_state: TraceState | None,
        attributes: dict[str, Any] | None,
    ) -> None:
        self._recorder = recorder
        self.name, self.kind = name, kind
        self.trace_id, self.span_id = trace_id, getrandbits(64) or 1
        self.parent_id, self.parent_remote, self.trace_state = parent_id, parent_remote, trace_state
        self.attributes: dict[str, Any] = attributes if attributes is not None else {}
        self.status_code: StatusCode = _UNSET
        self.status_description: str | None = None
        self._context: SpanContext | None = None
        self._token: Any = None
        self.start_ns, self.end_ns = time.time_ns(), 0

    def __enter__(self) -> LightSpan:
        self._token = attach(set_span_in_context(self))
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        try:
            if kind is not None and self.status_code is _UNSET:
                self.set_status(_ERROR, kind.__name__)
        finally:
            detach(self._token)
            self.end()

    def child(self, name: str, kind: SpanKind, attributes: dict[str, Any] | None) -> LightSpan:
        return LightSpan(self._recorder, name, kind, self.trace_id, self.span_id, False, self.trace_state, attributes)

    def traceparent(self) -> list[tuple[str, str]]:
        """This span as W3C headers for a request made under it (what the propagator would inject)."""
        headers = [("traceparent", f"00-{self.trace_id:032x}-{self.span_id:016x}-01")]
        if self.trace_state:
            headers.append(("tracestate", self.trace_state.to_header()))
        return headers

    # -- the OpenTelemetry API's Span -------------------------------------------------

    def get_span_context(self) -> SpanContext:
        if self._context is None:
            self._context = SpanContext(self.trace_id, self.span_id, False, SAMPLED, self.trace_state)
        return self._context

    def is_recording(self) -> bool:
        return self.end_ns == 0

    def set_attribute(self, key: str, value: Any) -> None:
        if isinstance(value, _VALUE_TYPES):
            self.attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        for key, value in attributes.items():
            if isinstance(value, _VALUE_TYPES):
                self.attributes[key] = value

    def update_name(self, name: str) -> None:
        self.name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        code = status.status_code if isinstance(status, Status) else status
        if isinstance(status, Status):
            description = status.description
        if self.status_code is _OK:  # OK is final (the API's rule)
            return
        self.status_code = code
        self.status_description = description if code is _ERROR else None

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None) -> None:
        pass  # our spans carry no events

    def record_exception(self, exception: BaseException, *args: Any, **kwargs: Any) -> None:
        pass  # never: an exception's message could quote what a client sent

    def end(self, end_time: int | None = None) -> None:
        if self.end_ns == 0:
            self.end_ns = end_time or time.time_ns()
            self._recorder.add(self)

    def readable(self, resource: Resource, scope: InstrumentationScope) -> ReadableSpan:
        parent = SpanContext(self.trace_id, self.parent_id, self.parent_remote, SAMPLED) if self.parent_id else None
        return ReadableSpan(
            name=self.name,
            context=self.get_span_context(),
            parent=parent,
            resource=resource,
            attributes=self.attributes,
            kind=self.kind,
            status=Status(self.status_code, self.status_description),
            start_time=self.start_ns,
            end_time=self.end_ns,
            instrumentation_scope=scope,
        )
