"""The writer and the reader on a real DuckDB file, fed by the SDK's own OTLP encoder."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import duckdb
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from open_autoglm.collector import CollectorError, SpanStore, expected_record, write_span_store
from open_autoglm.collector._decode import flatten
from open_autoglm.collector._writer import SpanWriter


@pytest.fixture
def make_spans() -> Iterator[Callable[[int], Sequence[ReadableSpan]]]:
    """Requests shaped like the telemetry contract: client, server and stage spans."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "unit", "autoglm.backend": "sim"})
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("open_autoglm.test", "1.2.3")

    def make(requests: int) -> Sequence[ReadableSpan]:
        exporter.clear()
        for i in range(requests):
            with tracer.start_as_current_span(
                "chat smollm2-135m",
                kind=SpanKind.CLIENT,
                attributes={"gen_ai.request.max_tokens": 64, "gen_ai.request.model": "m"},
            ) as client:
                with tracer.start_as_current_span("queue", attributes={"autoglm.queue": i}):
                    pass
                with tracer.start_as_current_span(
                    "decode",
                    attributes={"sizes": (1, 2, 3), "mean": 2.5, "ok": True},
                    links=[Link(client.get_span_context(), {"why": "test"})],
                ) as decode:
                    decode.add_event("first_token", {"index": 0})
                    decode.add_event("done")
                    decode.set_status(Status(StatusCode.ERROR, "engine stopped"))
        return exporter.get_finished_spans()

    yield make
    provider.shutdown()


def write(path: Path, spans: Sequence[ReadableSpan], flush_interval_s: float = 0.5) -> SpanWriter:
    writer = SpanWriter(path, flush_interval_s=flush_interval_s)
    writer.open()
    for start in range(0, len(spans), 7):
        assert writer.submit(flatten(encode_spans(spans[start : start + 7])))
    return writer


def test_every_span_is_stored_exactly(
    tmp_path: Path, make_spans: Callable[[int], Sequence[ReadableSpan]]
) -> None:
    spans = make_spans(20)
    path = tmp_path / "spans.duckdb"
    write(path, spans).close()
    with SpanStore(path) as store:
        assert store.span_count() == 60
        assert store.trace_count() == 20
        assert store.name_counts() == {"chat smollm2-135m": 20, "decode": 20, "queue": 20}
        for trace_id in store.trace_ids():
            stored = store.trace(trace_id)
            expected = sorted(
                (
                    expected_record(s)
                    for s in spans
                    if format(s.context.trace_id, "032x") == trace_id
                ),
                key=lambda r: (r.start_unix_ns, r.span_id),
            )
            assert stored == expected
        decode = store.spans_named("decode", limit=1)[0]
        assert decode.attributes == {"sizes": [1, 2, 3], "mean": 2.5, "ok": True}
        assert [e.name for e in decode.events] == ["first_token", "done"]
        assert (decode.status_code, decode.status_message) == ("ERROR", "engine stopped")


def test_sql_over_the_file_reads_attributes_and_joins_events(
    tmp_path: Path, make_spans: Callable[[int], Sequence[ReadableSpan]]
) -> None:
    path = tmp_path / "spans.duckdb"
    write(path, make_spans(5)).close()
    with SpanStore(path) as store:
        rows = store.connection.execute(
            """
            SELECT CAST(s.attributes->'$."autoglm.queue"' AS BIGINT) AS q
            FROM spans s WHERE s.name = 'queue' ORDER BY q
            """
        ).fetchall()
        assert [r[0] for r in rows] == [0, 1, 2, 3, 4]
        first_tokens = store.connection.execute(
            """
            SELECT count(*) FROM span_events e JOIN spans s USING (trace_id, span_id)
            WHERE e.name = 'first_token' AND e.time_unix_ns BETWEEN s.start_unix_ns
              AND s.end_unix_ns
            """
        ).fetchone()
        assert first_tokens == (5,)
        indexes = store.connection.execute(
            "SELECT index_name FROM duckdb_indexes() WHERE table_name = 'spans'"
        ).fetchall()
        assert indexes == [("spans_trace_id",)]


def test_columns_come_back_as_lists_and_unknown_names_are_refused(
    tmp_path: Path, make_spans: Callable[[int], Sequence[ReadableSpan]]
) -> None:
    path = tmp_path / "spans.duckdb"
    spans = make_spans(3)
    write(path, spans).close()
    with SpanStore(path) as store:
        columns = store.columns(["name", "duration_ns"], where="name = ?", params=["queue"])
        assert columns["name"] == ["queue"] * 3
        assert all(isinstance(d, int) and d >= 0 for d in columns["duration_ns"])
        assert store.columns(["name"], where="name = ?", params=["none"]) == {"name": []}
        events = store.columns(["name", "event_index"], table="span_events")
        assert sorted(events["name"]) == ["done"] * 3 + ["first_token"] * 3
        with pytest.raises(CollectorError, match="unknown spans columns: nope"):
            store.columns(["name", "nope"])
        with pytest.raises(CollectorError, match="unknown span store table"):
            store.columns(["name"], table="spans; DROP TABLE spans")


def test_the_interval_flush_stores_spans_before_close(
    tmp_path: Path, make_spans: Callable[[int], Sequence[ReadableSpan]]
) -> None:
    writer = write(tmp_path / "spans.duckdb", make_spans(2), flush_interval_s=0.05)
    deadline = time.monotonic() + 10
    while writer.stats().stored_spans < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    stats = writer.stats()
    assert (stats.stored_spans, stats.stored_events, stats.queued_spans) == (6, 4, 0)
    writer.close()


def test_a_full_queue_refuses_rather_than_grows(
    tmp_path: Path, make_spans: Callable[[int], Sequence[ReadableSpan]]
) -> None:
    spans = make_spans(10)
    writer = SpanWriter(tmp_path / "spans.duckdb", flush_interval_s=60, max_queued_spans=10)
    writer.open()
    batch = flatten(encode_spans(spans[:9]))
    assert writer.submit(batch)
    assert not writer.submit(flatten(encode_spans(spans[9:12])))
    stats = writer.close({"rejected_spans": 2, "http_requests": 2, "grpc_requests": 0})
    assert (stats.accepted_spans, stats.refused_spans, stats.stored_spans) == (9, 3, 9)
    assert not writer.submit(batch), "a closed writer takes nothing"
    with SpanStore(tmp_path / "spans.duckdb") as store:
        (session,) = store.sessions()
        assert session["accepted_spans"] == 9
        assert session["refused_spans"] == 3
        assert session["rejected_spans"] == 2
        assert session["stored_spans"] == 9


def test_reopening_a_store_appends(
    tmp_path: Path, make_spans: Callable[[int], Sequence[ReadableSpan]]
) -> None:
    path = tmp_path / "spans.duckdb"
    write(path, make_spans(1)).close()
    write(path, make_spans(1)).close()
    with SpanStore(path) as store:
        assert store.span_count() == 6
        assert len(store.sessions()) == 2


def test_opening_what_is_not_a_span_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CollectorError, match="no span store at"):
        SpanStore(tmp_path / "missing.duckdb")
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).close()
    with pytest.raises(CollectorError, match="is not a span store"):
        SpanStore(other)
    text = tmp_path / "text.duckdb"
    text.write_text("hello")
    with pytest.raises(CollectorError, match="cannot open span store"):
        SpanStore(text)


@pytest.mark.parametrize("name", ["run[1]", "run*", "run?"])
def test_bulk_written_store_under_a_glob_like_folder(tmp_path: Path, name: str) -> None:
    path = tmp_path / name / "spans.duckdb"
    path.parent.mkdir()
    spans = {"trace_id": ["a" * 32], "span_id": ["b" * 16], "name": ["decode"],
             "start_unix_ns": [10], "end_unix_ns": [25], "attributes": [{"k": 1}]}  # fmt: skip
    write_span_store(path, spans)
    write_span_store(path, {**spans, "span_id": ["c" * 16]})  # appends
    with SpanStore(path) as store:
        (first, second) = store.spans_named("decode")
        assert (first.duration_ns, first.kind, first.status_code) == (15, "INTERNAL", "UNSET")
        assert first.attributes == {"k": 1}
        assert second.span_id == "c" * 16
        assert store.sessions() == []  # no collector ran
    assert sorted(p.name for p in path.parent.iterdir()) == ["spans.duckdb"]
