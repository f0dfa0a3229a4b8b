"""The buffered span processor: retries instead of dropping, counts what it must drop."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from open_autoglm.telemetry import BufferedSpanProcessor


class Flaky(SpanExporter):
    """Fails the first ``failures`` exports; can be held closed (a collector that is down)."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.spans: list[str] = []
        self.calls = 0
        self.open = threading.Event()
        self.open.set()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        if not self.open.is_set() or self.failures > 0:
            self.failures -= 1
            return SpanExportResult.FAILURE
        self.spans.extend(s.name for s in spans)
        return SpanExportResult.SUCCESS


def _make(processor: BufferedSpanProcessor, count: int) -> None:
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    for i in range(count):
        tracer.start_span(f"s{i}").end()


def test_failed_exports_are_retried_not_dropped() -> None:
    exporter = Flaky(failures=3)
    processor = BufferedSpanProcessor(exporter, schedule_delay_ms=10, environ={})
    _make(processor, 100)
    assert processor.force_flush(10_000)
    assert exporter.spans == [f"s{i}" for i in range(100)]  # all, in order
    assert processor.exported == 100
    assert processor.dropped == 0
    assert exporter.calls > 1
    processor.shutdown()


def test_spans_past_the_queue_limit_are_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exporter = Flaky()
    exporter.open.clear()  # the collector is down
    processor = BufferedSpanProcessor(
        exporter, max_queue_size=50, schedule_delay_ms=10, export_timeout_ms=200, environ={}
    )
    _make(processor, 80)
    assert processor.dropped >= 30  # the 30 over the bound at least
    processor.shutdown()  # what the collector never took counts as dropped too
    assert processor.dropped + processor.exported == 80
    assert processor.exported == 0
    assert "80 spans were dropped (export queue limit 50" in caplog.text


def test_queue_limit_comes_from_the_environment() -> None:
    processor = BufferedSpanProcessor(Flaky(), environ={"OTEL_BSP_MAX_QUEUE_SIZE": "123"})
    assert processor.max_queue_size == 123
    processor.shutdown()
    default = BufferedSpanProcessor(Flaky(), environ={"OTEL_BSP_MAX_QUEUE_SIZE": "lots"})
    assert default.max_queue_size == 32_768
    default.shutdown()
