"""The spans of one request, made cheaply and handed to export in one go when it ends.

The SDK's live spans take locks, re-validate every attribute and call every processor's
``on_start``; the FastAPI instrumentation adds a span per ASGI message. A request's SERVER
span here is a plain object that collects its attributes; its children (stages, the proxy's
upstream phases) are recorded as tuples once their times are known. When the request ends
the tail sampler (:mod:`open_autoglm.telemetry._sampling`) decides, and only a kept request is
turned into SDK :class:`ReadableSpan` objects and given to the span processor -- the same
objects every SDK exporter and processor accepts. Nothing is done per streamed chunk.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from time import perf_counter_ns, time_ns
from types import TracebackType

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision as SamplingDecision
from opentelemetry.sdk.trace.sampling import Sampler
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import Attributes, AttributeValue

from open_autoglm.telemetry import _names as n
from open_autoglm.telemetry._batch import BufferedSpanProcessor
from open_autoglm.telemetry._sampling import KEEP_PARENT, Decision, TailSampler

logger = logging.getLogger(__name__)

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_UNSET = Status(StatusCode.UNSET)
_Part = tuple[
    SpanContext, SpanContext | None, str, SpanKind, int, int, Mapping[str, AttributeValue],
    list[tuple[str, int, Attributes]], Status,
]  # fmt: skip

# (context, parent, name, kind, start_ns, end_ns, attributes, events as (name, time_ns))
_Child = tuple[
    SpanContext, SpanContext, str, SpanKind, int, int, Mapping[str, AttributeValue],
    Sequence[tuple[str, int]],
]  # fmt: skip


class SpanOutlet:
    """Where a process's request spans go: its span processor, resource and scope, and the
    optional tail sampler (``None``: every recorded request is kept, ratio 1).

    ``processor`` is the one given to the tracer provider too (see
    :func:`open_autoglm.telemetry.make_tracing`), so spans made through the SDK and spans made
    here share one export queue.
    """

    def __init__(
        self,
        processor: SpanProcessor,
        resource: Resource,
        sampler: TailSampler | None = None,
        id_generator: IdGenerator | None = None,
        scope_name: str = n.TRACER_NAME,
        head_sampler: Sampler | None = None,
    ) -> None:
        """``head_sampler``: an SDK sampler consulted when a request starts (what
        ``OTEL_TRACES_SAMPLER`` configures); ``None``: parent-based, roots recorded."""
        self.processor = processor
        self.resource = resource
        self.sampler = sampler
        self.head_sampler = head_sampler
        self.scope = InstrumentationScope(scope_name)
        ids = id_generator or RandomIdGenerator()
        self.new_span_id = ids.generate_span_id
        self.new_trace_id = ids.generate_trace_id
        self._bundles = (
            processor.on_end_bundle if isinstance(processor, BufferedSpanProcessor) else None
        )

    def start(
        self,
        name: str,
        parent: SpanContext | None,
        attributes: dict[str, AttributeValue] | None = None,
        kind: SpanKind = SpanKind.SERVER,
    ) -> RequestSpan:
        """A live root span of one request, continuing ``parent`` (an extracted remote
        context) when it is valid."""
        return RequestSpan(self, name, parent, attributes or {}, kind)

    def emit(self, request: RequestSpan) -> None:
        """Hand a kept request over: whole to our buffered processor (its export thread builds
        or encodes the spans, off the event loop), else as SDK spans to ``processor``."""
        if self._bundles is not None:
            self._bundles(request)
            return
        for span in request.readable_spans():
            self.processor.on_end(span)


class RequestSpan(trace.Span):
    """The SERVER span of one request (an OpenTelemetry ``Span``, so ``get_current_span()``,
    propagators and ``set_attributes`` work on it) plus its children, exported when it ends.

    Not recording (nothing exported, children ignored) when the caller's ``traceparent`` says
    not sampled; its context still propagates, unsampled.
    """

    __slots__ = (
        "_children",
        "_context",
        "_end_ns",
        "_events",
        "_kind",
        "_name",
        "_outlet",
        "_parent",
        "_start_ns",
        "_start_perf",
        "_status",
        "attributes",
        "decision",
    )

    def __init__(
        self,
        outlet: SpanOutlet,
        name: str,
        parent: SpanContext | None,
        attributes: dict[str, AttributeValue],
        kind: SpanKind,
    ) -> None:
        self._outlet = outlet
        self._name = name
        self._kind = kind
        if parent is not None and parent.is_valid:
            self._parent: SpanContext | None = parent
            trace_id, flags, state = parent.trace_id, parent.trace_flags, parent.trace_state
        else:
            self._parent = None
            trace_id, flags, state = outlet.new_trace_id(), _SAMPLED, None
        if outlet.head_sampler is not None:
            parent_context = (
                None
                if self._parent is None
                else trace.set_span_in_context(trace.NonRecordingSpan(self._parent))
            )
            result = outlet.head_sampler.should_sample(
                parent_context, trace_id, name, kind, attributes
            )
            sampled = result.decision is SamplingDecision.RECORD_AND_SAMPLE
            flags = _SAMPLED if sampled else _NOT_SAMPLED
            state = result.trace_state or state
        self._context = SpanContext(
            trace_id, outlet.new_span_id(), is_remote=False, trace_flags=flags, trace_state=state
        )
        self.attributes = attributes
        self._events: list[Event] = []
        self._children: list[_Child] = []
        self._status = _UNSET
        self._start_ns = time_ns()
        self._start_perf = perf_counter_ns()
        self._end_ns = 0
        self.decision: Decision | None = None

    # ------------------------------------------------------------------ Span API
    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._context.trace_flags.sampled and not self._end_ns

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        self.attributes.update(attributes)

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        self.attributes[key] = value

    def add_event(
        self, name: str, attributes: Attributes = None, timestamp: int | None = None
    ) -> None:
        self._events.append(Event(name, attributes, timestamp or time_ns()))

    def update_name(self, name: str) -> None:
        self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        self._status = status if isinstance(status, Status) else Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        # error.type only: exception messages may carry prompt text, never recorded
        self.attributes.setdefault(n.ERROR_TYPE, type(exception).__name__)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        if exc_val is not None:
            self.record_exception(exc_val)
            self.set_status(Status(StatusCode.ERROR))
        self.end()

    # ------------------------------------------------------------------ children
    def add_child(
        self,
        name: str,
        start_ns: int,
        end_ns: int,
        attributes: Mapping[str, AttributeValue],
        events: Sequence[tuple[str, int]] = (),
        kind: SpanKind = SpanKind.INTERNAL,
        parent: SpanContext | None = None,
    ) -> SpanContext:
        """A finished child span (Unix-time ``start_ns``/``end_ns``) under this span, or under
        ``parent`` (an earlier child's context); returns its context. Kept only if the request
        is (nothing is built before the decision)."""
        own = self._context
        context = SpanContext(
            own.trace_id, self._outlet.new_span_id(), False, own.trace_flags, own.trace_state
        )
        if own.trace_flags.sampled:
            self._children.append(
                (context, parent or own, name, kind, start_ns, max(end_ns, start_ns),
                 attributes, events)
            )  # fmt: skip
        return context

    @property
    def failed(self) -> bool:
        """An error status, an ``error.type``, or an HTTP error response (4xx included: the
        tail sampler keeps those too, though the conventions leave a SERVER span's status
        unset for them)."""
        if self._status.status_code is StatusCode.ERROR or n.ERROR_TYPE in self.attributes:
            return True
        status = self.attributes.get(n.HTTP_RESPONSE_STATUS_CODE)
        return isinstance(status, int) and status >= 400

    def elapsed_s(self) -> float:
        return (perf_counter_ns() - self._start_perf) / 1e9

    def decide(self) -> Decision:
        """The tail sampler's decision, taken once (at the latest when the span ends); a
        metric may ask first so that exemplars point only at kept traces."""
        if self.decision is not None:
            return self.decision
        if not self._context.trace_flags.sampled:
            decision = Decision(False, 0.0, "parent")
        elif self._parent is not None and self._parent.is_remote:
            decision = KEEP_PARENT
        else:
            sampler = self._outlet.sampler
            decision = (
                Decision(True, 1.0, "ratio")
                if sampler is None
                else sampler.decide(
                    self._context.trace_id,
                    1 + len(self._children),
                    self.elapsed_s(),
                    self.failed,
                )
            )
        self.decision = decision
        return decision

    def end(self, end_time: int | None = None) -> None:
        if self._end_ns:
            return
        self._end_ns = end_time or time_ns()
        try:
            decision = self.decide()
            if decision.keep:
                self.attributes[n.ATTR_SAMPLING_RATIO] = decision.ratio
                self.attributes[n.ATTR_SAMPLING_REASON] = decision.reason
                self._outlet.emit(self)
        except Exception:  # instrumentation never fails a request
            logger.exception("exporting request spans failed")

    # ------------------------------------------------------------------ export (after end)
    @property
    def span_count(self) -> int:
        return 1 + len(self._children)

    @property
    def resource(self) -> Resource:
        return self._outlet.resource

    @property
    def scope(self) -> InstrumentationScope:
        return self._outlet.scope

    def parts(self) -> Iterator[_Part]:
        """Each span of the ended request as plain fields, children first, for encoders:
        (context, parent, name, kind, start_ns, end_ns, attributes, events as
        (name, time_ns, attributes), status)."""
        for child, parent, name, kind, start, end, attributes, events in self._children:
            yield (child, parent, name, kind, start, end, attributes,
                   [(event, at, None) for event, at in events], _UNSET)  # fmt: skip
        yield (
            self._context, self._parent, self._name, self._kind, self._start_ns, self._end_ns,
            self.attributes, [(e.name, e.timestamp, e.attributes) for e in self._events],
            self._status,
        )  # fmt: skip

    def readable_spans(self) -> list[ReadableSpan]:
        """The ended request's spans as SDK :class:`ReadableSpan` objects (children first)."""
        outlet = self._outlet
        context = self._context
        resource, scope = outlet.resource, outlet.scope
        spans = [
            ReadableSpan(
                name,
                context=child,
                parent=parent,
                resource=resource,
                attributes=attributes,
                events=[Event(event, timestamp=at) for event, at in events],
                kind=kind,
                instrumentation_scope=scope,
                start_time=start,
                end_time=end,
            )
            for child, parent, name, kind, start, end, attributes, events in self._children
        ]
        spans.append(
            ReadableSpan(
                self._name,
                context=context,
                parent=self._parent,
                resource=resource,
                attributes=self.attributes,
                events=self._events,
                kind=self._kind,
                instrumentation_scope=scope,
                status=self._status,
                start_time=self._start_ns,
                end_time=self._end_ns,
            )
        )
        return spans


def current_request_span() -> RequestSpan | None:
    """The request span of the running request, if the lean middleware made one."""
    span = trace.get_current_span()
    return span if isinstance(span, RequestSpan) else None
