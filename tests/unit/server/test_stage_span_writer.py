"""Stage spans written after the fact, through the public SDK API: the same tree whether the
provider lists its processors (the CLI's) or not (anyone's), plus the ``detokenize`` span."""

from __future__ import annotations

from time import perf_counter_ns

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from open_autoglm.instrumented_servers import BackendLoad, StageTimes
from open_autoglm.instrumented_servers._request_telemetry import RequestTelemetry, ServedRequest
from open_autoglm.telemetry import (
    ServerMetrics,
    TracingConfig,
    TrackingTracerProvider,
    make_tracer_provider,
)
from open_autoglm.telemetry import names as n

MS = 1_000_000


def _stages(t0: int, detokenize_ns: int) -> StageTimes:
    return StageTimes(
        tokenize_start_ns=t0, tokenize_end_ns=t0 + 1 * MS, enqueued_ns=t0 + 1 * MS,
        scheduled_ns=t0 + 3 * MS, first_token_ns=t0 + 10 * MS, finished_ns=t0 + 50 * MS,
        detokenize_ns=detokenize_ns, prompt_tokens=7, output_tokens=5, decode_steps=4,
        batch_size_sum=8, prefill_batch_size=1,
    )  # fmt: skip


def _run(provider: TracerProvider, detokenize_ns: int) -> tuple[list[ReadableSpan], float]:
    """One finished request through RequestTelemetry; its spans and the detokenize seconds
    observed in the stage histogram."""
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = CollectorRegistry()
    metrics = ServerMetrics(registry, "m", "onnxruntime", lambda: BackendLoad(0, 0))
    telemetry = RequestTelemetry(provider, metrics, "onnxruntime", simulated=False)
    t0 = perf_counter_ns()
    server = provider.get_tracer("test").start_span("POST /v1/chat/completions")
    record = ServedRequest("chat", "m", t0, 16, False, stages=_stages(t0, detokenize_ns))
    record.output_tokens, record.finish_reason = 5, "stop"
    record.first_output_ns, record.last_output_ns = t0 + 10 * MS, t0 + 50 * MS
    telemetry.finish(server, record)
    server.end()
    provider.shutdown()
    labels = {n.LABEL_MODEL: "m", n.LABEL_PROVIDER: "onnxruntime", n.LABEL_OPERATION: "chat",
              n.LABEL_STAGE: "detokenize"}  # fmt: skip
    observed = registry.get_sample_value(f"{n.METRIC_STAGE_DURATION}_sum", labels) or 0.0
    return list(exporter.get_finished_spans()), observed


def _tree(spans: list[ReadableSpan]) -> list[tuple[str, str | None, int, int, dict[str, object]]]:
    names = {s.context.span_id: s.name for s in spans}
    return sorted(
        (
            s.name,
            names.get(s.parent.span_id) if s.parent is not None else None,
            (s.start_time or 0) - min(x.start_time or 0 for x in spans if x.name == "tokenize"),
            (s.end_time or 0) - (s.start_time or 0),
            dict(s.attributes or {}),
        )
        for s in spans
        if s.name != "POST /v1/chat/completions"
    )


def test_tracking_provider_lists_the_processors_it_was_given() -> None:
    provider = make_tracer_provider(TracingConfig("svc"))
    assert isinstance(provider, TrackingTracerProvider)
    assert provider.span_processors == ()
    processor = SimpleSpanProcessor(InMemorySpanExporter())
    provider.add_span_processor(processor)
    assert provider.span_processors == (processor,)


@pytest.mark.parametrize("provider_type", [TracerProvider, TrackingTracerProvider])
def test_detokenize_is_a_child_of_decode_ending_with_it(provider_type: type) -> None:
    spans, observed = _run(provider_type(), detokenize_ns=4 * MS)
    by_name = {s.name: s for s in spans}
    decode, detok = by_name[n.SPAN_DECODE], by_name[n.SPAN_DETOKENIZE]
    assert detok.parent is not None
    assert detok.parent.span_id == decode.context.span_id
    assert detok.end_time == decode.end_time
    assert (detok.end_time or 0) - (detok.start_time or 0) == 4 * MS
    assert detok.attributes == {n.ATTR_OUTPUT_TOKENS: 5}
    assert observed == pytest.approx(0.004)
    for stage in (n.SPAN_TOKENIZE, n.SPAN_QUEUE, n.SPAN_PREFILL, n.SPAN_DECODE):
        parent = by_name[stage].parent
        assert parent is not None
        assert parent.span_id == by_name["POST /v1/chat/completions"].context.span_id


def test_no_detokenize_span_where_the_engine_does_not_measure_it() -> None:
    spans, observed = _run(TrackingTracerProvider(), detokenize_ns=0)
    assert n.SPAN_DETOKENIZE not in {s.name for s in spans}
    assert observed == 0.0


def test_both_paths_write_the_same_spans() -> None:
    fast, _ = _run(TrackingTracerProvider(), detokenize_ns=2 * MS)
    public, _ = _run(TracerProvider(), detokenize_ns=2 * MS)
    assert _tree(fast) == _tree(public)
    assert len(_tree(fast)) == 5
