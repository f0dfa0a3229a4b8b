"""The writer thread: span rows from the receivers, appended to DuckDB in large batches.

Receivers hand over a :class:`SpanBatch` and answer the exporter at once; the writer thread
gathers rows until ``flush_rows`` are pending or ``flush_interval_s`` has passed, then appends
them column-wise (numpy arrays scanned by DuckDB: one ``INSERT`` per flush, so the fixed cost
of a statement and its commit is paid once per tens of thousands of spans, not per request).
:meth:`SpanWriter.close` drains the queue, so every accepted span is in the file after it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import duckdb
import numpy as np

from open_autoglm import __version__
from open_autoglm.collector._decode import EVENT_COLUMNS, SPAN_COLUMNS, SpanBatch
from open_autoglm.collector._errors import CollectorStartError
from open_autoglm.collector._schema import TRACE_INDEX_DDL, create_schema

logger = logging.getLogger(__name__)

_INT_SPAN_COLUMNS: Final = frozenset({"start_unix_ns", "end_unix_ns"})
_INT_EVENT_COLUMNS: Final = frozenset({"event_index", "time_unix_ns"})
_STOP: Final = object()

_INSERT_SPANS: Final = """
INSERT INTO spans SELECT
    trace_id, span_id, parent_span_id, name, kind, service_name,
    TRY_CAST(start_unix_ns AS BIGINT), TRY_CAST(end_unix_ns AS BIGINT),
    TRY_CAST(end_unix_ns AS BIGINT) - TRY_CAST(start_unix_ns AS BIGINT),
    status_code, status_message, attributes, resource_attributes, scope_name, scope_version,
    trace_state, links
FROM _open_autoglm_span_batch
"""
_INSERT_EVENTS: Final = """
INSERT INTO span_events SELECT
    trace_id, span_id, TRY_CAST(event_index AS INTEGER), name,
    TRY_CAST(time_unix_ns AS BIGINT), attributes
FROM _open_autoglm_event_batch
"""


@dataclass(frozen=True, slots=True)
class WriterStats:
    """What the writer has done so far."""

    accepted_spans: int
    refused_spans: int
    stored_spans: int
    stored_events: int
    write_failed_spans: int
    queued_spans: int
    max_queued_spans: int
    flushes: int
    max_flush_ms: float


class SpanWriter:
    """Owns the DuckDB file while the collector runs; one thread appends, nothing else writes."""

    def __init__(
        self,
        path: Path,
        *,
        flush_rows: int = 32_768,
        flush_interval_s: float = 0.5,
        max_queued_spans: int = 1_000_000,
    ) -> None:
        self._path = path
        self._flush_rows = flush_rows
        self._flush_interval_s = flush_interval_s
        self._max_queued = max_queued_spans
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._queued = 0
        self._max_queued_seen = 0
        self._accepted = 0
        self._refused = 0
        self._stored = 0
        self._stored_events = 0
        self._failed = 0
        self._flushes = 0
        self._max_flush_ms = 0.0
        self._started_ns = time.time_ns()
        self._thread: threading.Thread | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._closed = False

    def open(self) -> None:
        """Create or open the file and its tables, then start the thread."""
        try:
            self._con = duckdb.connect(str(self._path))
        except duckdb.Error as exc:
            raise CollectorStartError(f"cannot open span store {self._path}: {exc}") from exc
        create_schema(self._con)
        self._started_ns = time.time_ns()
        self._thread = threading.Thread(target=self._run, name="span-writer", daemon=True)
        self._thread.start()

    def submit(self, batch: SpanBatch) -> bool:
        """Queue ``batch``'s rows; ``False`` (refused, nothing queued) when the queue is full."""
        count = len(batch.spans)
        if not count and not batch.events:
            return True
        with self._lock:
            if self._closed or (self._queued and self._queued + count > self._max_queued):
                self._refused += count
                return False
            self._queued += count
            self._accepted += count
            self._max_queued_seen = max(self._max_queued_seen, self._queued)
        self._queue.put(batch)
        return True

    def stats(self) -> WriterStats:
        with self._lock:
            return WriterStats(
                accepted_spans=self._accepted,
                refused_spans=self._refused,
                stored_spans=self._stored,
                stored_events=self._stored_events,
                write_failed_spans=self._failed,
                queued_spans=self._queued,
                max_queued_spans=self._max_queued_seen,
                flushes=self._flushes,
                max_flush_ms=self._max_flush_ms,
            )

    def close(self, session: dict[str, int] | None = None) -> WriterStats:
        """Stop taking rows, store every queued one, index, record the session, close the file.

        ``session`` adds receiver counters (``rejected_spans``, ``http_requests``,
        ``grpc_requests``) to the ``collector_sessions`` row.
        """
        with self._lock:
            already = self._closed
            self._closed = True
        if not already and self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
        con = self._con
        if con is not None:
            self._con = None
            try:
                con.execute(TRACE_INDEX_DDL)
                self._record_session(con, session or {})
                con.execute("CHECKPOINT")
            except duckdb.Error:
                logger.exception("finishing the span store %s failed", self._path)
            finally:
                con.close()
        return self.stats()

    def _record_session(self, con: duckdb.DuckDBPyConnection, session: dict[str, int]) -> None:
        stats = self.stats()
        con.execute(
            "INSERT INTO collector_sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                self._started_ns,
                time.time_ns(),
                stats.accepted_spans,
                session.get("rejected_spans", 0),
                stats.refused_spans,
                stats.stored_spans,
                stats.stored_events,
                stats.write_failed_spans,
                stats.max_queued_spans,
                stats.max_flush_ms,
                session.get("http_requests", 0),
                session.get("grpc_requests", 0),
                __version__,
            ],
        )

    def _run(self) -> None:
        spans: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        deadline = time.monotonic() + self._flush_interval_s
        stopping = False
        while not stopping:
            timeout = max(0.0, deadline - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is _STOP:
                stopping = True
            elif isinstance(item, SpanBatch):
                spans.extend(item.spans)
                events.extend(item.events)
                if len(spans) < self._flush_rows:
                    continue
            if spans or events:
                self._flush(spans, events)
                spans, events = [], []
            deadline = time.monotonic() + self._flush_interval_s

    def _flush(self, spans: list[tuple[Any, ...]], events: list[tuple[Any, ...]]) -> None:
        con = self._con
        assert con is not None
        started = time.perf_counter()
        try:
            if spans:
                con.register(
                    "_open_autoglm_span_batch", _columns(spans, SPAN_COLUMNS, _INT_SPAN_COLUMNS)
                )
                try:
                    con.execute(_INSERT_SPANS)
                finally:
                    con.unregister("_open_autoglm_span_batch")
            if events:
                con.register(
                    "_open_autoglm_event_batch", _columns(events, EVENT_COLUMNS, _INT_EVENT_COLUMNS)
                )
                try:
                    con.execute(_INSERT_EVENTS)
                finally:
                    con.unregister("_open_autoglm_event_batch")
            stored, stored_events, failed = len(spans), len(events), 0
        except (duckdb.Error, ValueError, OverflowError):
            logger.exception(
                "appending %d spans to %s failed; they are lost", len(spans), self._path
            )
            stored, stored_events, failed = 0, 0, len(spans)
        elapsed_ms = (time.perf_counter() - started) * 1e3
        with self._lock:
            self._queued -= len(spans)
            self._stored += stored
            self._stored_events += stored_events
            self._failed += failed
            self._flushes += 1
            self._max_flush_ms = max(self._max_flush_ms, elapsed_ms)


def _columns(
    rows: list[tuple[Any, ...]], names: tuple[str, ...], int_columns: frozenset[str]
) -> dict[str, np.ndarray[Any, Any]]:
    out: dict[str, np.ndarray[Any, Any]] = {}
    for name, values in zip(names, zip(*rows, strict=True), strict=True):
        if name in int_columns:
            out[name] = np.fromiter(values, dtype=np.uint64, count=len(rows))
        else:
            out[name] = np.array(values, dtype=object)
    return out
