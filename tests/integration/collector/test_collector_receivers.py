"""The real OpenTelemetry exporters (HTTP protobuf, gRPC) and hand-built OTLP JSON, stored
exactly; every kind of bad input answered, and the collector still working after it."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Sequence

import grpc
import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter

from open_autoglm.collector import Collector, SpanStore, expected_record

Traced = Callable[[SpanExporter, int], Sequence[ReadableSpan]]
PROTOBUF = {"Content-Type": "application/x-protobuf"}


def assert_stored_exactly(collector: Collector, spans: Sequence[ReadableSpan]) -> None:
    stats = collector.stop()
    assert stats.stored_spans == len(spans)
    with SpanStore(collector.config.db_path) as store:
        assert store.span_count() == len(spans)
        for span in spans:
            trace = store.trace(format(span.context.trace_id, "032x"))
            (stored,) = [r for r in trace if r.span_id == format(span.context.span_id, "016x")]
            assert stored == expected_record(span)


@pytest.mark.parametrize("compression", [HttpCompression.NoCompression, HttpCompression.Gzip])
def test_http_protobuf_exporter_spans_are_stored_exactly(
    collector: Collector, traced_request: Traced, compression: HttpCompression
) -> None:
    exporter = HttpSpanExporter(endpoint=collector.traces_url, compression=compression)
    spans = traced_request(exporter, 5)
    assert collector.stats().http_requests == 15
    assert_stored_exactly(collector, spans)


@pytest.mark.parametrize("compression", [grpc.Compression.NoCompression, grpc.Compression.Gzip])
def test_grpc_exporter_spans_are_stored_exactly(
    collector: Collector, traced_request: Traced, compression: grpc.Compression
) -> None:
    exporter = GrpcSpanExporter(
        endpoint=collector.grpc_endpoint, insecure=True, compression=compression
    )
    spans = traced_request(exporter, 5)
    assert collector.stats().grpc_requests == 15
    assert_stored_exactly(collector, spans)


class JsonExporter(SpanExporter):
    """OTLP/HTTP JSON as the specification encodes it: hex ids, enum numbers, camelCase."""

    def __init__(self, url: str, gzip_body: bool = False) -> None:
        self.url = url
        self.gzip_body = gzip_body
        self.answers: list[httpx.Response] = []

    def export(self, spans: Sequence[ReadableSpan]) -> object:
        body = json.dumps({"resourceSpans": [_resource_spans(s) for s in spans]}).encode()
        headers = {"Content-Type": "application/json"}
        if self.gzip_body:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        self.answers.append(httpx.post(self.url, content=body, headers=headers))
        return None

    def shutdown(self) -> None:
        pass


def _value(value: object) -> dict[str, object]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}  # int64 as a decimal string, per the spec
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, tuple | list):
        return {"arrayValue": {"values": [_value(v) for v in value]}}
    return {"stringValue": str(value)}


def _attributes(attributes: object) -> list[dict[str, object]]:
    items = dict(attributes or {})  # type: ignore[call-overload]
    return [{"key": k, "value": _value(v)} for k, v in items.items()]


def _resource_spans(span: ReadableSpan) -> dict[str, object]:
    ctx = span.context
    scope = span.instrumentation_scope
    assert scope is not None
    return {
        "resource": {"attributes": _attributes(span.resource.attributes)},
        "scopeSpans": [
            {
                "scope": {"name": scope.name, "version": scope.version},
                "spans": [
                    {
                        "traceId": format(ctx.trace_id, "032x"),
                        "spanId": format(ctx.span_id, "016x"),
                        "parentSpanId": format(span.parent.span_id, "016x") if span.parent else "",
                        "name": span.name,
                        "kind": span.kind.value + 1,  # SDK INTERNAL=0, OTLP SPAN_KIND_INTERNAL=1
                        "startTimeUnixNano": str(span.start_time),
                        "endTimeUnixNano": str(span.end_time),
                        "attributes": _attributes(span.attributes),
                        "events": [
                            {
                                "name": e.name,
                                "timeUnixNano": str(e.timestamp),
                                "attributes": _attributes(e.attributes),
                            }
                            for e in span.events
                        ],
                        "links": [
                            {
                                "traceId": format(link.context.trace_id, "032x"),
                                "spanId": format(link.context.span_id, "016x"),
                                "attributes": _attributes(link.attributes),
                            }
                            for link in span.links
                        ],
                        "status": {
                            "code": span.status.status_code.value,
                            "message": span.status.description or "",
                        },
                    }
                ],
            }
        ],
    }


@pytest.mark.parametrize("gzip_body", [False, True])
def test_http_json_spans_are_stored_exactly(
    collector: Collector, traced_request: Traced, gzip_body: bool
) -> None:
    assert collector.traces_url is not None
    exporter = JsonExporter(collector.traces_url, gzip_body)
    spans = traced_request(exporter, 3)
    assert {(a.status_code, a.headers["Content-Type"]) for a in exporter.answers} == {
        (200, "application/json")
    }
    assert {a.text for a in exporter.answers} == {"{}"}
    assert_stored_exactly(collector, spans)


def _request(traced: Traced, requests: int) -> tuple[ExportTraceServiceRequest, int]:
    captured: list[ReadableSpan] = []

    class Capture(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> object:
            captured.extend(spans)
            return None

    traced(Capture(), requests)
    return encode_spans(captured), len(captured)


def test_partial_success_counts_spans_with_invalid_ids(
    collector: Collector, traced_request: Traced
) -> None:
    request, total = _request(traced_request, 2)
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[0].trace_id = b"\x01" * 15
    spans[1].span_id = b""
    answer = httpx.post(
        str(collector.traces_url), content=request.SerializeToString(), headers=PROTOBUF
    )
    assert answer.status_code == 200
    partial = ExportTraceServiceResponse.FromString(answer.content).partial_success
    assert partial.rejected_spans == 2
    assert partial.error_message == (
        "2 spans rejected: 1 with an invalid trace_id, 1 with an invalid span_id"
    )
    stats = collector.stop()
    assert (stats.stored_spans, stats.rejected_spans) == (total - 2, 2)


def test_partial_success_in_json(collector: Collector) -> None:
    valid = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"}
    spans = [{"traceId": "ab", "spanId": "cd"}, valid]
    body = {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}
    answer = httpx.post(str(collector.traces_url), json=body)
    assert answer.status_code == 200
    assert answer.json() == {
        "partialSuccess": {
            "rejectedSpans": "1",
            "errorMessage": "1 spans rejected: 1 with an invalid trace_id",
        }
    }


ZERO_TRACE = "0" * 32
ZERO_SPAN = "0" * 16
TRACE_HEX = "5b8efff798038103d269b633813fc60c"


@pytest.mark.parametrize(
    ("span", "reason"),
    [({"traceId": ZERO_TRACE, "spanId": "eee19b7ec3c1b174"}, "an invalid trace_id"),
     ({"traceId": TRACE_HEX, "spanId": ZERO_SPAN}, "an invalid span_id"),
     ({"traceId": "ab", "spanId": "cd"}, "an invalid trace_id")],
)  # fmt: skip
def test_a_request_whose_every_span_is_invalid_is_a_400(
    collector: Collector, span: dict[str, str], reason: str
) -> None:
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    answer = httpx.post(str(collector.traces_url), json=body)
    assert answer.status_code == 400
    assert answer.json()["message"] == f"1 spans rejected: 1 with {reason}"
    stats = collector.stop()
    assert (stats.stored_spans, stats.rejected_spans) == (0, 1)


def test_an_all_zero_parent_is_a_root(collector: Collector) -> None:
    spans = [
        {"traceId": TRACE_HEX, "spanId": "eee19b7ec3c1b174", "parentSpanId": ZERO_SPAN,
         "name": "chat m", "kind": 3, "startTimeUnixNano": "1700000000000000000",
         "endTimeUnixNano": "1700000001000000000"},
        {"traceId": TRACE_HEX, "spanId": "eee19b7ec3c1b175", "parentSpanId": "eee19b7ec3c1b174",
         "name": "POST /v1/chat/completions", "kind": 2,
         "startTimeUnixNano": "1700000000100000000", "endTimeUnixNano": "1700000000900000000"},
    ]  # fmt: skip
    body = {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}
    assert httpx.post(str(collector.traces_url), json=body).status_code == 200
    collector.stop()
    with SpanStore(collector.config.db_path) as store:
        parents = {r.name: r.parent_span_id for r in store.trace(TRACE_HEX)}
    assert parents == {"chat m": None, "POST /v1/chat/completions": "eee19b7ec3c1b174"}


def test_a_request_of_invalid_spans_over_grpc_is_invalid_argument(
    collector: Collector, traced_request: Traced
) -> None:
    request, total = _request(traced_request, 1)
    for span in request.resource_spans[0].scope_spans[0].spans:
        span.span_id = bytes(8)
    with grpc.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            response_deserializer=ExportTraceServiceResponse.FromString,
        )
        with pytest.raises(grpc.RpcError) as info:
            export(request.SerializeToString(), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"{total} spans rejected: {total} with an invalid span_id" in str(info.value.details())


def test_partial_success_over_grpc(collector: Collector, traced_request: Traced) -> None:
    request, _ = _request(traced_request, 1)
    request.resource_spans[0].scope_spans[0].spans[0].trace_id = bytes(16)
    with grpc.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            response_deserializer=ExportTraceServiceResponse.FromString,
        )
        answer = export(request.SerializeToString(), timeout=10)
    assert answer.partial_success.rejected_spans == 1


def _status_message(answer: httpx.Response) -> str:
    if answer.headers["Content-Type"] == "application/json":
        return str(answer.json()["message"])
    return str(status_pb2.Status.FromString(answer.content).message)


@pytest.mark.parametrize(
    ("headers", "body", "status", "message"),
    [
        (PROTOBUF, b"\xff\xff\xff garbage", 400, "invalid protobuf"),
        ({"Content-Type": "application/json"}, b"{nope", 400, "invalid JSON"),
        ({"Content-Type": "text/plain"}, b"hello", 415, "unsupported Content-Type 'text/plain'"),
        ({**PROTOBUF, "Content-Encoding": "br"}, b"x", 415, "unsupported Content-Encoding"),
        ({**PROTOBUF, "Content-Encoding": "gzip"}, b"not gzip", 400, "invalid gzip body"),
        (PROTOBUF, b"x" * 1_000_001, 413, "over the limit of 1000000 bytes"),
        (
            {**PROTOBUF, "Content-Encoding": "gzip"},
            gzip.compress(bytes(5_000_000)),
            413,
            "decompressed body is over the limit",
        ),
    ],
)
def test_bad_input_gets_a_clear_answer_and_breaks_nothing(
    collector: Collector,
    traced_request: Traced,
    headers: dict[str, str],
    body: bytes,
    status: int,
    message: str,
) -> None:
    answer = httpx.post(str(collector.traces_url), content=body, headers=headers)
    assert answer.status_code == status
    assert message in _status_message(answer)
    spans = traced_request(HttpSpanExporter(endpoint=collector.traces_url), 1)
    assert_stored_exactly(collector, spans)


def test_a_chunked_body_over_the_limit_is_413(collector: Collector) -> None:
    def chunks() -> object:
        for _ in range(20):
            yield b"x" * 100_000

    answer = httpx.post(str(collector.traces_url), content=chunks(), headers=PROTOBUF)  # type: ignore[arg-type]
    assert answer.status_code == 413


def test_wrong_method_and_path(collector: Collector) -> None:
    assert httpx.get(str(collector.traces_url)).status_code == 405
    assert httpx.post(f"{collector.http_endpoint}/v1/logs", content=b"").status_code == 404


def test_grpc_garbage_is_invalid_argument(collector: Collector) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as caught:
            export(b"\xff\xff\xff garbage", timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "invalid protobuf" in str(caught.value.details())


def test_grpc_message_over_the_limit_is_resource_exhausted(collector: Collector) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as caught:
            export(b"\x00" * 1_100_000, timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
