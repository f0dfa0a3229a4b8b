"""OTLP trace requests: bodies (protobuf, JSON, gzip) to messages, messages to span rows.

The rows are plain tuples in the column order of :data:`SPAN_COLUMNS`, ready for the writer to
append in bulk. Validation happens while flattening: a span without a valid trace or span id
(missing, the wrong length, or all zeros) is counted as rejected (the OTLP partial-success
answer) and never stored. An all-zero ``parentSpanId``, which several SDKs send for a root, is
no parent: the span is stored as a root (``parent_span_id`` NULL).
"""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from open_autoglm.collector._errors import (
    BodyTooLargeError,
    DecodeError,
    UnsupportedMediaTypeError,
)
from open_autoglm.collector._schema import SPANS_TABLE_COLUMNS

#: Column order of the tuples in :attr:`SpanBatch.spans` (the ``spans`` table adds
#: ``duration_ns``, computed by the store).
SPAN_COLUMNS: Final = tuple(c for c in SPANS_TABLE_COLUMNS if c != "duration_ns")
#: Column order of the tuples in :attr:`SpanBatch.events`.
EVENT_COLUMNS: Final = (
    "trace_id",
    "span_id",
    "event_index",
    "name",
    "time_unix_ns",
    "attributes",
)

#: ``Span.SpanKind`` numbers to the names stored (``SPAN_KIND_`` dropped).
SPAN_KINDS: Final = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
#: ``Status.StatusCode`` numbers to the names stored (``STATUS_CODE_`` dropped).
STATUS_CODES: Final = ("UNSET", "OK", "ERROR")

_ZERO_TRACE_ID: Final = bytes(16)
_ZERO_SPAN_ID: Final = bytes(8)
_ID_KEYS: Final = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")
# AnyValue field numbers: 1-4 are scalars, then array, kvlist, bytes.
_ARRAY_FIELD: Final = 5
_KVLIST_FIELD: Final = 6
_BYTES_FIELD: Final = 7
_GZIP_WBITS: Final = 16 + zlib.MAX_WBITS  # gzip header and trailer
_ZLIB_AUTO_WBITS: Final = 32 + zlib.MAX_WBITS  # zlib or gzip, detected from the header


@dataclass(slots=True)
class SpanBatch:
    """The rows of one export request, and what was refused from it."""

    spans: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def error_message(self) -> str:
        """A one-line summary of the rejections for the partial-success answer ('' if none)."""
        if not self.rejected:
            return ""
        parts = ", ".join(f"{count} with {reason}" for reason, count in self.reasons.items())
        return f"{self.rejected} spans rejected: {parts}"


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """Undo ``Content-Encoding`` (``gzip``, ``deflate`` or ``identity``) within ``limit`` bytes."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise UnsupportedMediaTypeError(
            f"unsupported Content-Encoding {encoding!r}; use gzip or identity"
        )
    wbits = _GZIP_WBITS if encoding != "deflate" else _ZLIB_AUTO_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise DecodeError(f"invalid {encoding} body: {exc}") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise BodyTooLargeError(f"decompressed body is over the limit of {limit} bytes")
    if not inflater.eof:
        raise DecodeError(f"truncated {encoding} body")
    return out


def decode_protobuf(body: bytes) -> ExportTraceServiceRequest:
    """Parse an ``ExportTraceServiceRequest`` in the protobuf binary encoding."""
    try:
        request: ExportTraceServiceRequest = ExportTraceServiceRequest.FromString(body)
    except (ProtobufDecodeError, RecursionError, ValueError) as exc:
        raise DecodeError(f"invalid protobuf ExportTraceServiceRequest: {exc}") from exc
    return request


def decode_json(body: bytes) -> ExportTraceServiceRequest:
    """Parse an ``ExportTraceServiceRequest`` in the OTLP JSON encoding.

    OTLP JSON differs from the standard protobuf JSON mapping in one way that matters here:
    trace and span ids are hex strings, not base64. They are rewritten before parsing; an id
    that is not hex becomes empty, so its span is rejected as having an invalid id.

    Any malformed body raises :class:`DecodeError` (a 400), whatever its shape: ``orjson``
    refuses nesting deeper than 1024 levels and NaN, protobuf's parser nested messages deeper
    than 100, and every other exception the parser raises on a wrong type is mapped too.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"invalid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise DecodeError("invalid OTLP JSON: the body must be an object")
    for resource_spans in _items(document, "resourceSpans", "resource_spans"):
        for scope_spans in _items(resource_spans, "scopeSpans", "scope_spans"):
            for span in _items(scope_spans, "spans", "spans"):
                _hex_ids_to_base64(span)
                for link in _items(span, "links", "links"):
                    _hex_ids_to_base64(link)
    try:
        request: ExportTraceServiceRequest = json_format.ParseDict(
            document, ExportTraceServiceRequest(), ignore_unknown_fields=True
        )
    except Exception as exc:  # ParseError, or what a wrong type makes the parser raise
        raise DecodeError(f"invalid OTLP JSON: {exc}") from exc
    return request


def _items(obj: Any, camel: str, snake: str) -> list[Any]:
    if not isinstance(obj, dict):
        return []
    value = obj.get(camel, obj.get(snake))
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _hex_ids_to_base64(obj: dict[str, Any]) -> None:
    for key in _ID_KEYS:
        value = obj.get(key)
        if isinstance(value, str):
            try:
                obj[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
            except ValueError:
                obj[key] = ""


def any_value(value: AnyValue) -> Any:
    """An ``AnyValue`` as a JSON-ready Python value (bytes as base64, as OTLP JSON does)."""
    fields = value.ListFields()
    if not fields:
        return None
    descriptor, inner = fields[0]
    return _value(descriptor.number, inner)


def _value(number: int, inner: Any) -> Any:
    if number < _ARRAY_FIELD:  # string, bool, int, double: already the Python value
        return inner
    if number == _ARRAY_FIELD:
        return [any_value(item) for item in inner.values]
    if number == _KVLIST_FIELD:
        return {kv.key: any_value(kv.value) for kv in inner.values}
    if number == _BYTES_FIELD:
        return base64.b64encode(inner).decode("ascii")
    return inner


def attributes_json(attributes: Any) -> str | None:
    """Attributes (a repeated ``KeyValue``) as a JSON object text, ``None`` when empty.

    This is the hot loop of ingest: one ``ListFields`` call per attribute is the cheapest
    way to read a ``oneof`` through the upb runtime.
    """
    if not attributes:
        return None
    out: dict[str, Any] = {}
    for kv in attributes:
        fields = kv.value.ListFields()
        if fields:
            descriptor, inner = fields[0]
            number = descriptor.number
            out[kv.key] = inner if number < _ARRAY_FIELD else _value(number, inner)
        else:
            out[kv.key] = None
    return orjson.dumps(out).decode()


def flatten(request: ExportTraceServiceRequest) -> SpanBatch:
    """Every valid span of ``request`` as a row; invalid ones counted as rejected."""
    batch = SpanBatch()
    rows = batch.spans
    append = rows.append
    kinds = SPAN_KINDS
    codes = STATUS_CODES
    for resource_spans in request.resource_spans:
        resource = resource_spans.resource
        service_name = None
        for kv in resource.attributes:
            if kv.key == "service.name":
                service_name = kv.value.string_value
                break
        resource_attributes = attributes_json(resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            scope_name = scope.name or None
            scope_version = scope.version or None
            for span in scope_spans.spans:
                trace_id = span.trace_id
                span_id = span.span_id
                parent = span.parent_span_id
                if parent == _ZERO_SPAN_ID:
                    parent = b""  # the invalid id some SDKs send for "no parent": a root
                if (
                    len(trace_id) != 16
                    or len(span_id) != 8
                    or trace_id == _ZERO_TRACE_ID
                    or span_id == _ZERO_SPAN_ID
                    or (parent and len(parent) != 8)
                ):
                    _reject(batch, trace_id, span_id, parent)
                    continue
                trace_hex = trace_id.hex()
                span_hex = span_id.hex()
                status = span.status
                kind = span.kind
                code = status.code
                attributes = span.attributes
                links = span.links
                append(
                    (
                        trace_hex,
                        span_hex,
                        parent.hex() if parent else None,
                        span.name,
                        kinds[kind] if 0 <= kind < 6 else str(kind),
                        service_name,
                        span.start_time_unix_nano,
                        span.end_time_unix_nano,
                        codes[code] if 0 <= code < 3 else str(code),
                        status.message or None,
                        attributes_json(attributes) if attributes else None,
                        resource_attributes,
                        scope_name,
                        scope_version,
                        span.trace_state or None,
                        _links_json(links) if links else None,
                    )
                )
                events = span.events
                if events:
                    batch.events.extend(
                        (
                            trace_hex,
                            span_hex,
                            index,
                            event.name,
                            event.time_unix_nano,
                            attributes_json(event.attributes),
                        )
                        for index, event in enumerate(events)
                    )
    return batch


def _reject(batch: SpanBatch, trace_id: bytes, span_id: bytes, parent: bytes) -> None:
    if len(trace_id) != 16 or trace_id == _ZERO_TRACE_ID:
        reason = "an invalid trace_id"
    elif len(span_id) != 8 or span_id == _ZERO_SPAN_ID:
        reason = "an invalid span_id"
    else:
        reason = "an invalid parent_span_id"
    batch.rejected += 1
    batch.reasons[reason] = batch.reasons.get(reason, 0) + 1


def _links_json(links: Any) -> str:
    return orjson.dumps(
        [
            {
                "trace_id": link.trace_id.hex(),
                "span_id": link.span_id.hex(),
                "trace_state": link.trace_state or None,
                "attributes": {kv.key: any_value(kv.value) for kv in link.attributes},
            }
            for link in links
        ]
    ).decode()


def span_count(request: ExportTraceServiceRequest) -> int:
    """How many spans ``request`` carries, valid or not."""
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
