"""Request bodies to span rows: protobuf, OTLP JSON, compression, validation."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from open_autoglm.collector import BodyTooLargeError, DecodeError, UnsupportedMediaTypeError
from open_autoglm.collector._decode import (
    SPAN_COLUMNS,
    decode_json,
    decode_protobuf,
    decompress,
    flatten,
    span_count,
)

TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN = bytes.fromhex("eee19b7ec3c1b174")
PARENT = bytes.fromhex("eee19b7ec3c1b173")


def request_of(*spans: Span) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=list(spans))])]
    )


def row(request: ExportTraceServiceRequest, index: int = 0) -> dict[str, object]:
    batch = flatten(request)
    return dict(zip(SPAN_COLUMNS, batch.spans[index], strict=True))


def test_protobuf_garbage_is_a_decode_error_with_a_message() -> None:
    with pytest.raises(DecodeError, match="invalid protobuf"):
        decode_protobuf(b"\xff\xff\xff\xff not protobuf")


def test_json_ids_are_hex_enums_ints_and_int64_strings() -> None:
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "lib", "version": "2.0"},
                        "spans": [
                            {
                                "traceId": TRACE.hex(),
                                "spanId": SPAN.hex(),
                                "parentSpanId": PARENT.hex(),
                                "name": "prefill",
                                "kind": 3,
                                "startTimeUnixNano": "1700000000000000001",
                                "endTimeUnixNano": 1700000000000000501,
                                "status": {"code": 2, "message": "boom"},
                                "attributes": [
                                    {"key": "n", "value": {"intValue": "42"}},
                                    {"key": "ok", "value": {"boolValue": True}},
                                ],
                                "unknownField": "ignored",
                            }
                        ],
                    }
                ],
            }
        ]
    }
    stored = row(decode_json(json.dumps(body).encode()))
    assert stored["trace_id"] == TRACE.hex()
    assert stored["span_id"] == SPAN.hex()
    assert stored["parent_span_id"] == PARENT.hex()
    assert stored["kind"] == "CLIENT"
    assert stored["service_name"] == "svc"
    assert (stored["scope_name"], stored["scope_version"]) == ("lib", "2.0")
    assert stored["start_unix_ns"] == 1700000000000000001
    assert stored["end_unix_ns"] == 1700000000000000501
    assert (stored["status_code"], stored["status_message"]) == ("ERROR", "boom")
    assert json.loads(str(stored["attributes"])) == {"n": 42, "ok": True}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "invalid JSON"),
        (b"[1, 2]", "must be an object"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}',
            "OTLP JSON",
        ),
        (b"\xff\xfe", "invalid JSON"),
    ],
)
def test_bad_json_is_a_decode_error(body: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_json(body)


def test_json_id_that_is_not_hex_rejects_its_span() -> None:
    body = {
        "resourceSpans": [
            {"scopeSpans": [{"spans": [{"traceId": "zz" * 16, "spanId": SPAN.hex()}]}]}
        ]
    }
    batch = flatten(decode_json(json.dumps(body).encode()))
    assert (batch.spans, batch.rejected) == ([], 1)


def test_gzip_and_deflate_are_undone() -> None:
    assert decompress(gzip.compress(b"payload"), "gzip", 100) == b"payload"
    assert decompress(zlib.compress(b"payload"), "deflate", 100) == b"payload"
    assert decompress(b"payload", "identity", 100) == b"payload"
    assert decompress(b"payload", "", 100) == b"payload"


def test_a_gzip_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(bytes(10_000_000))
    with pytest.raises(BodyTooLargeError, match="over the limit of 1000"):
        decompress(bomb, "gzip", 1000)


def test_corrupt_or_truncated_gzip_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="invalid gzip"):
        decompress(b"not gzip at all", "gzip", 1000)
    with pytest.raises(DecodeError, match="truncated"):
        decompress(gzip.compress(b"x" * 100)[:-8], "gzip", 1000)


def test_unknown_content_encoding_is_unsupported() -> None:
    with pytest.raises(UnsupportedMediaTypeError, match="'br'"):
        decompress(b"x", "br", 1000)


def test_invalid_ids_are_rejected_and_counted_by_reason() -> None:
    good = Span(trace_id=TRACE, span_id=SPAN, name="good")
    request = request_of(
        good,
        Span(trace_id=b"", span_id=SPAN, name="no trace id"),
        Span(trace_id=bytes(16), span_id=SPAN, name="zero trace id"),
        Span(trace_id=TRACE, span_id=b"\x01" * 7, name="short span id"),
        Span(trace_id=TRACE, span_id=bytes(8), name="zero span id"),
        Span(trace_id=TRACE, span_id=SPAN, parent_span_id=b"\x01" * 3, name="bad parent"),
    )
    batch = flatten(request)
    assert [r[3] for r in batch.spans] == ["good"]
    assert batch.rejected == 5
    assert span_count(request) == 6
    assert batch.error_message() == (
        "5 spans rejected: 2 with an invalid trace_id, 2 with an invalid span_id, "
        "1 with an invalid parent_span_id"
    )


def test_an_all_zero_parent_is_no_parent() -> None:
    request = request_of(
        Span(trace_id=TRACE, span_id=SPAN, parent_span_id=bytes(8), name="root"),
        Span(trace_id=TRACE, span_id=PARENT, parent_span_id=SPAN, name="child"),
    )
    assert row(request, 0)["parent_span_id"] is None
    assert row(request, 1)["parent_span_id"] == SPAN.hex()
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": TRACE.hex(), "spanId": SPAN.hex(), "parentSpanId": "0" * 16}]}]}]}  # fmt: skip
    assert row(decode_json(json.dumps(body).encode()))["parent_span_id"] is None


def test_every_attribute_value_type_keeps_its_type() -> None:
    attributes = [
        KeyValue(key="s", value=AnyValue(string_value="text")),
        KeyValue(key="b", value=AnyValue(bool_value=False)),
        KeyValue(key="i", value=AnyValue(int_value=-(2**62))),
        KeyValue(key="d", value=AnyValue(double_value=0.25)),
        KeyValue(key="zero", value=AnyValue(int_value=0)),
        KeyValue(key="bytes", value=AnyValue(bytes_value=b"\x00\x01")),
        KeyValue(key="empty", value=AnyValue()),
        KeyValue(
            key="array",
            value=AnyValue(
                array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(string_value="two")])
            ),
        ),
        KeyValue(
            key="kv",
            value=AnyValue(
                kvlist_value=KeyValueList(
                    values=[KeyValue(key="inner", value=AnyValue(double_value=1.5))]
                )
            ),
        ),
    ]
    stored = row(request_of(Span(trace_id=TRACE, span_id=SPAN, attributes=attributes)))
    assert json.loads(str(stored["attributes"])) == {
        "s": "text",
        "b": False,
        "i": -(2**62),
        "d": 0.25,
        "zero": 0,
        "bytes": "AAE=",
        "empty": None,
        "array": [1, "two"],
        "kv": {"inner": 1.5},
    }


def test_events_and_links_become_rows_and_json() -> None:
    span = Span(
        trace_id=TRACE,
        span_id=SPAN,
        name="decode",
        events=[
            Span.Event(name="first_token", time_unix_nano=5),
            Span.Event(
                name="second",
                time_unix_nano=6,
                attributes=[KeyValue(key="i", value=AnyValue(int_value=1))],
            ),
        ],
        links=[Span.Link(trace_id=TRACE, span_id=PARENT, trace_state="k=v")],
    )
    batch = flatten(request_of(span))
    assert batch.events == [
        (TRACE.hex(), SPAN.hex(), 0, "first_token", 5, None),
        (TRACE.hex(), SPAN.hex(), 1, "second", 6, '{"i":1}'),
    ]
    stored = dict(zip(SPAN_COLUMNS, batch.spans[0], strict=True))
    assert json.loads(str(stored["links"])) == [
        {"trace_id": TRACE.hex(), "span_id": PARENT.hex(), "trace_state": "k=v", "attributes": {}}
    ]


def test_a_span_without_attributes_stores_null_and_a_root_has_no_parent() -> None:
    stored = row(request_of(Span(trace_id=TRACE, span_id=SPAN, name="root")))
    assert stored["attributes"] is None
    assert stored["parent_span_id"] is None
    assert stored["kind"] == "UNSPECIFIED"
    assert stored["status_code"] == "UNSET"
