"""The buffered span processor: retries instead of dropping, counts what it must drop."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from open_autoglm.telemetry import SHUTDOWN_STALL_S, BufferedSpanProcessor
from open_autoglm.testing import wait_for


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


class Hung(SpanExporter):
    """A collector that never answers: each export blocks until ``shutdown`` (as the SDK OTLP
    exporter's retry loop waits on its shutdown event), then fails."""

    def __init__(self) -> None:
        self.calls = 0
        self.closed = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        self.closed.wait(60)
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.closed.set()


class Slow(SpanExporter):
    """A healthy collector that takes ``delay_s`` to take each batch."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        threading.Event().wait(self.delay_s)
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


def _timed_shutdown(processor: BufferedSpanProcessor) -> float:
    started = time.monotonic()
    processor.shutdown()
    return time.monotonic() - started


def test_shutdown_gives_up_at_once_on_a_collector_that_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exporter = Flaky()
    exporter.open.clear()  # down, as a refused connection: each export fails at once
    processor = BufferedSpanProcessor(exporter, schedule_delay_ms=10, environ={})
    _make(processor, 20)
    wait_for("a failed export", lambda: exporter.calls >= 1, timeout_s=10, interval_s=0.01)
    took = _timed_shutdown(processor)  # the export timeout is 30 s: not waited for
    assert took < 1.0
    assert processor.dropped == 20
    assert processor.exported == 0
    assert "20 spans were dropped" in caplog.text
    assert "gave up at shutdown" in caplog.text


def test_shutdown_bounds_an_export_the_collector_never_answers() -> None:
    exporter = Hung()
    processor = BufferedSpanProcessor(exporter, schedule_delay_ms=10, environ={})
    _make(processor, 5)
    wait_for("an export under way", lambda: exporter.calls >= 1, timeout_s=10, interval_s=0.01)
    took = _timed_shutdown(processor)
    assert SHUTDOWN_STALL_S <= took < SHUTDOWN_STALL_S + 1.5
    assert exporter.closed.is_set()  # the exporter was shut down: its own wait ended
    assert processor.dropped == 5
    assert processor.queued == 0


def test_abandon_ends_a_shutdown_that_waits_for_the_collector() -> None:
    exporter = Hung()
    processor = BufferedSpanProcessor(exporter, schedule_delay_ms=10, environ={})
    _make(processor, 5)
    wait_for("an export under way", lambda: exporter.calls >= 1, timeout_s=10, interval_s=0.01)
    threading.Timer(0.2, processor.abandon).start()  # a second signal, 0.2 s into the stop
    took = _timed_shutdown(processor)
    assert took < SHUTDOWN_STALL_S
    assert processor.dropped == 5


@pytest.mark.slow
def test_shutdown_still_exports_a_healthy_backlog_longer_than_the_bound() -> None:
    exporter = Slow(delay_s=0.25)
    processor = BufferedSpanProcessor(
        exporter, schedule_delay_ms=5_000, max_export_batch_size=10, environ={}
    )
    _make(processor, 120)  # 12 batches, 3 s: each gets through, so the drain goes on
    took = _timed_shutdown(processor)
    assert took > SHUTDOWN_STALL_S
    assert exporter.spans == 120
    assert processor.exported == 120
    assert processor.dropped == 0
