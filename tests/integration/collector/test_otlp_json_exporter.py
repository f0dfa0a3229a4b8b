"""Our OTLP/JSON exporter (``http/json``) against the collector: spans stored exactly, as with
the SDK's own protobuf exporter."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from open_autoglm.collector import Collector, SpanStore, expected_record
from open_autoglm.telemetry import TracingConfig, make_exporter
from open_autoglm.telemetry._otlp_json import OtlpJsonSpanExporter, encode_json

Traced = Callable[[SpanExporter, int], Sequence[ReadableSpan]]


def test_json_exporter_spans_are_stored_exactly(
    collector: Collector, traced_request: Traced
) -> None:
    config = TracingConfig(service_name="x", endpoint=collector.http_endpoint, protocol="http/json")
    exporter = make_exporter(config)
    assert isinstance(exporter, OtlpJsonSpanExporter)
    spans = traced_request(exporter, 4)
    stats = collector.stop()
    assert stats.stored_spans == len(spans) == 12
    assert stats.rejected_spans == 0
    with SpanStore(collector.config.db_path) as store:
        for span in spans:
            trace = store.trace(format(span.context.trace_id, "032x"))
            (stored,) = [r for r in trace if r.span_id == format(span.context.span_id, "016x")]
            assert stored == expected_record(span)


def test_unreachable_collector_fails_the_export_without_raising(
    traced_request: Traced,
) -> None:
    exporter = OtlpJsonSpanExporter("http://127.0.0.1:9/v1/traces", timeout_s=2)
    results: list[SpanExportResult] = []

    class Recording(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            results.append(exporter.export(spans))
            return results[-1]

    traced_request(Recording(), 1)
    assert results
    assert set(results) == {SpanExportResult.FAILURE}


def test_bad_endpoint_is_refused() -> None:
    with pytest.raises(ValueError, match="bad OTLP endpoint"):
        OtlpJsonSpanExporter("localhost:4318")


def test_encoding_groups_spans_by_resource(traced_request: Traced) -> None:
    captured: list[bytes] = []

    class Capture(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            captured.append(encode_json(spans))
            return SpanExportResult.SUCCESS

    traced_request(Capture(), 1)
    import json

    body = json.loads(captured[-1])
    (resource,) = body["resourceSpans"]
    keys = {a["key"] for a in resource["resource"]["attributes"]}
    assert {"service.name", "autoglm.backend"} <= keys
    span = resource["scopeSpans"][0]["spans"][0]
    assert len(span["traceId"]) == 32
    assert isinstance(span["startTimeUnixNano"], str)
