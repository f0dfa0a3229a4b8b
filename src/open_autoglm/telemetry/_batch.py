"""A batch span processor that loses no span silently.

The SDK's ``BatchSpanProcessor`` drops a span when its queue (2,048 spans) is full and drops a
batch whose export failed; at about 500 requests/s behind a busy collector that cost 0.2 % of
the server spans of a run. This processor instead:

* buffers up to ``max_queue_size`` spans (``OTEL_BSP_MAX_QUEUE_SIZE``, default
  :data:`DEFAULT_MAX_QUEUE_SIZE` = 32,768 spans, roughly 50 MB at the server's span sizes):
  the bound, documented, past which a span is dropped -- and counted;
* retries a failed export (collector down or refusing) with backoff, keeping the batch, while
  new spans keep queueing under the same bound;
* at shutdown exports what is left within ``OTEL_BSP_EXPORT_TIMEOUT`` while the collector
  takes it, but gives up on a collector that does not: at once when the last export failed
  (down, refusing), else once no batch got through for :data:`SHUTDOWN_STALL_S` seconds
  (hung). Giving up shuts the exporter down, which also ends the SDK OTLP exporters' own retry
  loop (up to their 10 s timeout otherwise); what could not be sent is counted as dropped and
  logged in one line. A process stop so takes a few seconds at most, whatever the collector.

``exported`` and ``dropped`` are read by ``/metrics`` (``autoglm_spans_exported_total``,
``autoglm_spans_dropped_total``) and logged at shutdown, so a lost span is never silent.
The export runs in one daemon thread; ``on_end`` only appends to a deque (no lock, no
encoding on the caller's thread). A request's lean spans arrive as one bundle
(:meth:`BufferedSpanProcessor.on_end_bundle`): the export thread builds them, or with our
OTLP JSON exporter encodes them straight from their fields.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Final, Protocol

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

logger = logging.getLogger(__name__)

DEFAULT_MAX_QUEUE_SIZE: Final = 32_768
DEFAULT_SCHEDULE_DELAY_MS: Final = 500
DEFAULT_MAX_EXPORT_BATCH_SIZE: Final = 512
DEFAULT_EXPORT_TIMEOUT_MS: Final = 30_000
_MAX_BACKOFF_S: Final = 5.0
#: At shutdown, how long the export of what is queued may go without a batch getting through
#: before the rest is dropped (counted and logged); a collector whose last export failed is
#: given up at once. The bound of a stop with a collector that is down or hung.
SHUTDOWN_STALL_S: Final = 2.0
#: After giving up, how long shutdown waits for the export thread to notice (an export stuck
#: in a request the collector never answers is not waited for: the thread is a daemon).
_ABANDON_JOIN_S: Final = 0.2


class SpanBundle(Protocol):
    """The spans of one request, handed over together (a lean ``RequestSpan``)."""

    @property
    def span_count(self) -> int: ...

    def readable_spans(self) -> list[ReadableSpan]: ...


class BundleExporter(Protocol):
    """An exporter that encodes bundles itself (``OtlpJsonSpanExporter``)."""

    def export_items(self, items: list[ReadableSpan | SpanBundle]) -> SpanExportResult: ...


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        logger.warning("ignoring %s=%r: not an integer", name, raw)
        return default
    if value <= 0:
        logger.warning("ignoring %s=%r: must be positive", name, raw)
        return default
    return value


class BufferedSpanProcessor(SpanProcessor):
    """Exports ended, sampled spans in batches from a background thread (see the module).

    Settings default to the ``OTEL_BSP_*`` variables, then to the module's constants.
    """

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        max_queue_size: int | None = None,
        schedule_delay_ms: int | None = None,
        max_export_batch_size: int | None = None,
        export_timeout_ms: int | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.max_queue_size = max_queue_size or _env_int(
            env, "OTEL_BSP_MAX_QUEUE_SIZE", DEFAULT_MAX_QUEUE_SIZE
        )
        self._delay_s = (
            schedule_delay_ms or _env_int(env, "OTEL_BSP_SCHEDULE_DELAY", DEFAULT_SCHEDULE_DELAY_MS)
        ) / 1000
        self._batch = min(
            self.max_queue_size,
            max_export_batch_size
            or _env_int(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", DEFAULT_MAX_EXPORT_BATCH_SIZE),
        )
        self._timeout_s = (
            export_timeout_ms or _env_int(env, "OTEL_BSP_EXPORT_TIMEOUT", DEFAULT_EXPORT_TIMEOUT_MS)
        ) / 1000
        self._exporter = exporter
        self._queue: collections.deque[ReadableSpan | SpanBundle] = collections.deque()
        # spans queued = _in - _out: _in written under _put_lock, _out by the export thread
        self._in = 0
        self._out = 0
        self._put_lock = threading.Lock()
        self._items = getattr(exporter, "export_items", None)
        self._wake = threading.Event()
        self._flushed = threading.Condition()
        self._flush_requests = 0
        self._flushes_done = 0
        self._stopping = False
        self._abandoned = threading.Event()  # shutdown gave up: the thread sends nothing more
        self._failing = False  # the last export failed (collector down or refusing)
        self._progress_at = time.monotonic()  # when a batch last got through
        self.exported = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="span-export", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ caller side
    @property
    def queued(self) -> int:
        """Spans waiting for export now."""
        return self._in - self._out

    def _drop(self, count: int) -> None:
        with self._put_lock:
            self.dropped += count

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None or not context.trace_flags.sampled:
            return
        self._put(span, 1)

    def on_end_bundle(self, bundle: SpanBundle) -> None:
        """Queue the spans of one kept request at once (they are built in the export thread)."""
        self._put(bundle, bundle.span_count)

    def _put(self, item: ReadableSpan | SpanBundle, count: int) -> None:
        with self._put_lock:  # uncontended but for SDK spans ended on other threads
            before = self._in - self._out
            if self._stopping or before + count > self.max_queue_size:
                self.dropped += count
                return
            self._queue.append(item)
            self._in += count
        if before < self._batch <= before + count:
            self._wake.set()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export everything queued now; false if that took longer than ``timeout_millis``."""
        with self._flushed:
            self._flush_requests += 1
            target = self._flush_requests
            self._wake.set()
            return self._flushed.wait_for(
                lambda: self._flushes_done >= target or not self._thread.is_alive(),
                timeout_millis / 1000,
            )

    def abandon(self) -> None:
        """Give up exporting now (a second stop signal; safe in a signal handler): the export
        thread sends nothing more, and :meth:`shutdown`, running or to come, counts what is
        left as dropped without waiting for the collector."""
        self._abandoned.set()

    def shutdown(self) -> None:
        """Export what is queued while the collector takes it (within the export timeout; given
        up at once when the last export failed, or after :data:`SHUTDOWN_STALL_S` seconds
        without a batch through), count the rest dropped and log the count in one line; a
        second call does nothing (the SDK also shuts providers down at exit)."""
        if self._stopping:
            return
        self._stopping = True
        self._wake.set()
        started = time.monotonic()
        hard_deadline = started + self._timeout_s
        while self._thread.is_alive():
            now = time.monotonic()
            stalled = now - max(self._progress_at, started) > SHUTDOWN_STALL_S
            if self._failing or stalled or now > hard_deadline or self._abandoned.is_set():
                break
            self._thread.join(0.02)
        gave_up = self._thread.is_alive() or self._abandoned.is_set()
        if gave_up:
            self._abandoned.set()
            self._exporter.shutdown()  # ends an SDK exporter's own retry loop at once
            self._thread.join(_ABANDON_JOIN_S)
        left = self.queued
        if left:
            self._queue.clear()
            self._out += left
            self._drop(left)
        if self.dropped:
            logger.warning(
                "%d spans were dropped (export queue limit %d, or the collector never took "
                "them%s); %d exported",
                self.dropped,
                self.max_queue_size,
                f": gave up at shutdown after {time.monotonic() - started:.1f} s"
                if gave_up
                else "",
                self.exported,
            )
        if not gave_up:
            self._exporter.shutdown()

    # ------------------------------------------------------------------ export thread
    def _take(self) -> tuple[list[ReadableSpan | SpanBundle], int]:
        """Items from the queue's head worth about one batch of spans, and their span count."""
        queue = self._queue
        items: list[ReadableSpan | SpanBundle] = []
        count = 0
        while queue and count < self._batch:
            item = queue.popleft()
            items.append(item)
            count += item.span_count if not isinstance(item, ReadableSpan) else 1
        return items, count

    def _send(self, items: list[ReadableSpan | SpanBundle]) -> SpanExportResult:
        if self._items is not None:
            result: SpanExportResult = self._items(items)
            return result
        spans: list[ReadableSpan] = []
        for item in items:
            if isinstance(item, ReadableSpan):
                spans.append(item)
            else:
                spans.extend(item.readable_spans())
        return self._exporter.export(spans)

    def _export(
        self, items: list[ReadableSpan | SpanBundle], count: int, deadline: float | None
    ) -> None:
        """Export one batch, retrying with backoff; give up (count dropped) only past
        ``deadline`` (at shutdown)."""
        backoff = 0.1
        try:
            self._retry(items, count, deadline, backoff)
        finally:
            if not self._abandoned.is_set():  # else shutdown counted it with the rest
                self._out += count

    def _retry(
        self,
        items: list[ReadableSpan | SpanBundle],
        count: int,
        deadline: float | None,
        backoff: float,
    ) -> None:
        while True:
            try:
                result = self._send(items)
            except Exception:  # an exporter must not kill the thread
                logger.exception("span exporter raised")
                result = SpanExportResult.FAILURE
            if self._abandoned.is_set():
                return  # shutdown gave up and counts the batch as dropped
            if result is SpanExportResult.SUCCESS:
                self.exported += count
                self._failing = False
                self._progress_at = time.monotonic()
                return
            self._failing = True
            if deadline is not None and time.monotonic() + backoff > deadline:
                self._drop(count)
                return
            if self._stopping and deadline is None:
                deadline = time.monotonic() + self._timeout_s
            if self._abandoned.wait(backoff):
                return
            backoff = min(backoff * 2, _MAX_BACKOFF_S)

    def _run(self) -> None:
        while True:
            self._wake.wait(self._delay_s)
            self._wake.clear()
            stopping = self._stopping
            deadline = time.monotonic() + self._timeout_s if stopping else None
            with self._flushed:
                flush_target = self._flush_requests
            while self._queue and not self._abandoned.is_set():  # a full batch may be waiting
                items, count = self._take()
                self._export(items, count, deadline)
            with self._flushed:
                self._flushes_done = max(self._flushes_done, flush_target)
                self._flushed.notify_all()
            if stopping:
                return
