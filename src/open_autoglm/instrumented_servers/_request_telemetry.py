"""Turns what happened to one request into stage spans and metric observations.

The backend stamps the stages; this module is the one place that names them as spans
(contract in :mod:`open_autoglm.telemetry`) and observes the latency histograms with the
request's ``trace_id`` as exemplar.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from time import perf_counter_ns

from opentelemetry import trace
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Span, SpanContext, SpanKind
from opentelemetry.util.types import AttributeValue

from open_autoglm.instrumented_servers._backend import StageTimes
from open_autoglm.instrumented_servers._content_capture import output_messages
from open_autoglm.telemetry import RequestSpan, ServerMetrics, TrackingTracerProvider, wall_ns
from open_autoglm.telemetry import names as n


@dataclass(slots=True)
class ServedRequest:
    """One request as the server saw it; perf_counter_ns stamps."""

    operation: str
    model: str
    arrival_ns: int
    max_tokens: int
    stream: bool
    stages: StageTimes | None = None
    preprocess: tuple[int, int] | None = None  # (start, end)
    image_count: int = 0
    image_bytes: int = 0
    image_pixels: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0
    first_output_ns: int = 0
    last_output_ns: int = 0
    finish_reason: str | None = None
    error_type: str | None = None
    cancelled: bool = False
    response_id: str = ""
    #: Opt-in content capture (``ServerConfig.capture_content``): the request's messages as
    #: ``gen_ai.input.messages`` JSON, and the text sent back, chunk by chunk. None: off.
    input_messages: str | None = None
    output_text: list[str] | None = None
    extra_attributes: dict[str, AttributeValue] = field(default_factory=dict)


class _StageSpanWriter:
    """Writes stage spans, which are known only after the fact (start and end come from the
    backend's stamps).

    With a :class:`~open_autoglm.telemetry.TrackingTracerProvider` (what the server's CLI
    builds) they are built as finished :class:`ReadableSpan` objects and handed to the
    provider's processors: this skips the live-span machinery (locks, attribute
    re-validation, ``on_start``) and costs about a quarter of ``tracer.start_span(...).end()``.
    With any other provider they go through the public tracer API, with explicit start and
    end times.
    """

    def __init__(self, provider: TracerProvider) -> None:
        self._processors: tuple[SpanProcessor, ...] | None = (
            provider.span_processors if isinstance(provider, TrackingTracerProvider) else None
        )
        self._tracer = provider.get_tracer(n.TRACER_NAME)
        self._new_span_id = provider.id_generator.generate_span_id
        self._resource = provider.resource
        self._scope = InstrumentationScope(n.TRACER_NAME)

    def write(
        self,
        parent: SpanContext,
        name: str,
        start_ns: int,
        end_ns: int,
        attributes: dict[str, AttributeValue],
        events: Sequence[tuple[str, int]],
    ) -> SpanContext:
        """Write one finished INTERNAL span under ``parent``; returns its context."""
        if self._processors is None:
            live = self._tracer.start_span(
                name, context=trace.set_span_in_context(trace.NonRecordingSpan(parent)),
                kind=SpanKind.INTERNAL, start_time=start_ns, attributes=attributes,
            )  # fmt: skip
            for event_name, at in events:
                live.add_event(event_name, timestamp=at)
            live.end(end_time=end_ns)
            return live.get_span_context()
        context = SpanContext(
            parent.trace_id, self._new_span_id(), is_remote=False,
            trace_flags=parent.trace_flags, trace_state=parent.trace_state,
        )  # fmt: skip
        span = ReadableSpan(
            name,
            context=context,
            parent=parent,
            resource=self._resource,
            attributes=attributes,
            events=[Event(event_name, timestamp=at) for event_name, at in events],
            kind=SpanKind.INTERNAL,
            instrumentation_scope=self._scope,
            start_time=start_ns,
            end_time=end_ns,
        )
        for processor in self._processors:
            processor.on_end(span)
        return context


class RequestTelemetry:
    def __init__(
        self,
        tracer_provider: TracerProvider | None,
        metrics: ServerMetrics,
        backend: str,
        simulated: bool,
    ) -> None:
        self._writer = None if tracer_provider is None else _StageSpanWriter(tracer_provider)
        self._metrics = metrics
        self._backend = backend
        self._simulated = simulated

    def finish(self, span: Span, record: ServedRequest) -> None:
        """Record spans and metrics of a finished, failed or cancelled request.

        Stage spans first (on a lean :class:`~open_autoglm.telemetry.RequestSpan` they are
        children it exports with itself), then the tail sampler's decision, then metrics: an
        exemplar only names a trace that is exported. Never raises: instrumentation must not
        fail a request.
        """
        end_ns = perf_counter_ns()
        self._annotate_server_span(span, record)
        durations = self._stage_spans(span, record, end_ns)
        if isinstance(span, RequestSpan):
            keep = span.decide().keep
        else:
            keep = span.get_span_context().trace_flags.sampled
        ctx = span.get_span_context()
        exemplar = {n.EXEMPLAR_TRACE_ID: format(ctx.trace_id, "032x")} if keep else None
        observe = self._metrics.stage.labels
        labels = (record.model, self._backend, record.operation)
        for stage, seconds in durations:
            observe(*labels, stage).observe(seconds, exemplar)
        self._metrics.observe_request(
            record.model,
            record.operation,
            arrival_ns=record.arrival_ns,
            first_output_ns=record.first_output_ns,
            last_output_ns=record.last_output_ns,
            prompt_tokens=record.prompt_tokens,
            output_tokens=record.output_tokens,
            finish_reason=record.finish_reason,
            error_type=record.error_type,
            cancelled=record.cancelled,
            exemplar=exemplar,
        )

    def _annotate_server_span(self, span: Span, record: ServedRequest) -> None:
        if not span.is_recording():
            return
        attributes: dict[str, AttributeValue] = {
            n.GEN_AI_OPERATION_NAME: record.operation,
            n.GEN_AI_PROVIDER_NAME: self._backend,
            n.GEN_AI_REQUEST_MODEL: record.model,
            n.GEN_AI_RESPONSE_MODEL: record.model,
            n.GEN_AI_REQUEST_MAX_TOKENS: record.max_tokens,
            n.GEN_AI_USAGE_INPUT_TOKENS: record.prompt_tokens,
            n.GEN_AI_USAGE_OUTPUT_TOKENS: record.output_tokens,
            n.ATTR_BACKEND: self._backend,
            n.GEN_AI_REQUEST_STREAM: record.stream,
        }
        if record.response_id:
            attributes[n.GEN_AI_RESPONSE_ID] = record.response_id
        if self._simulated:
            attributes[n.ATTR_SIMULATED] = True
        if record.finish_reason is not None:
            attributes[n.GEN_AI_RESPONSE_FINISH_REASONS] = (record.finish_reason,)
        if record.error_type is not None:
            attributes[n.ERROR_TYPE] = record.error_type
        if record.cancelled:
            attributes[n.ATTR_CANCELLED] = True
        if record.input_messages is not None:
            attributes[n.GEN_AI_INPUT_MESSAGES] = record.input_messages
        if record.output_text is not None:
            attributes[n.GEN_AI_OUTPUT_MESSAGES] = output_messages(
                "".join(record.output_text), record.finish_reason
            )
        attributes.update(record.extra_attributes)
        span.set_attributes(attributes)

    def _stage_spans(
        self, parent: Span, record: ServedRequest, end_ns: int
    ) -> list[tuple[str, float]]:
        """Write the stage spans; return each stage's duration in seconds, for the metrics."""
        stages = record.stages
        parent_context = parent.get_span_context()
        recording = parent.is_recording()
        lean = parent if isinstance(parent, RequestSpan) and recording else None
        writer = self._writer if recording and lean is None else None
        durations: list[tuple[str, float]] = []

        def emit(
            name: str,
            start: int,
            end: int,
            attributes: dict[str, AttributeValue],
            events: Sequence[tuple[str, int]] = (),
            parent: SpanContext = parent_context,
        ) -> SpanContext | None:
            if not start:
                return None
            end = max(end or end_ns, start)
            durations.append((name, (end - start) / 1e9))
            if lean is not None:
                return lean.add_child(
                    name, wall_ns(start), wall_ns(end), attributes,
                    [(event_name, wall_ns(at)) for event_name, at in events], parent=parent,
                )  # fmt: skip
            if writer is None:
                return None
            return writer.write(
                parent, name, wall_ns(start), wall_ns(end), attributes,
                [(event_name, wall_ns(at)) for event_name, at in events],
            )  # fmt: skip

        if record.preprocess is not None:
            emit(
                n.SPAN_PREPROCESS, *record.preprocess,
                {
                    n.ATTR_IMAGE_COUNT: record.image_count,
                    n.ATTR_IMAGE_BYTES: record.image_bytes,
                    n.ATTR_IMAGE_PIXELS: record.image_pixels,
                },
            )  # fmt: skip
        if stages is None:
            return durations
        emit(
            n.SPAN_TOKENIZE, stages.tokenize_start_ns, stages.tokenize_end_ns,
            {n.GEN_AI_USAGE_INPUT_TOKENS: stages.prompt_tokens},
        )  # fmt: skip
        emit(
            n.SPAN_QUEUE, stages.enqueued_ns, stages.scheduled_ns,
            {n.ATTR_QUEUE_DEPTH: stages.queue_depth_at_enqueue},
        )  # fmt: skip
        prefill: dict[str, AttributeValue] = {
            n.ATTR_BATCH_SIZE: stages.prefill_batch_size,
            n.ATTR_PROMPT_TOKENS: stages.prompt_tokens,
            n.ATTR_CACHED_TOKENS: stages.cached_tokens,
        }
        decode: dict[str, AttributeValue] = {
            n.ATTR_OUTPUT_TOKENS: record.output_tokens,
            n.ATTR_DECODE_STEPS: stages.decode_steps,
            n.ATTR_MEAN_BATCH_SIZE: stages.mean_batch_size,
            n.ATTR_PREEMPTIONS: stages.preemptions,
        }
        if stages.batch_cap is not None:
            prefill[n.ATTR_BATCH_CAP] = decode[n.ATTR_BATCH_CAP] = stages.batch_cap
        emit(n.SPAN_PREFILL, stages.scheduled_ns, stages.first_token_ns, prefill)
        decode_span = emit(
            n.SPAN_DECODE, stages.first_token_ns, stages.finished_ns, decode,
            events=((n.EVENT_FIRST_TOKEN, stages.first_token_ns),),
        )  # fmt: skip
        if stages.detokenize_ns and stages.first_token_ns:
            # Measured per token and spread over decode; drawn as one child of decode that
            # ends with it, so decode's self time no longer counts the detokenizer's.
            decode_end = max(stages.finished_ns or end_ns, stages.first_token_ns)
            emit(
                n.SPAN_DETOKENIZE, max(decode_end - stages.detokenize_ns, stages.first_token_ns),
                decode_end, {n.ATTR_OUTPUT_TOKENS: record.output_tokens},
                parent=decode_span or parent_context,
            )  # fmt: skip
        return durations
