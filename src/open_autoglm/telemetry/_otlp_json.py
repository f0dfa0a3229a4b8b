"""An OTLP/HTTP span exporter with the JSON encoding (``OTEL_EXPORTER_OTLP_PROTOCOL=http/json``).

The Python SDK ships protobuf exporters only; its encoder builds one protobuf object per span,
attribute and value in Python, in a thread that competes with the server's event loop. The
OTLP JSON encoding (hex ids, integers as strings, camelCase fields, per the OTLP
specification) written with ``orjson`` is several times cheaper per span
(``benchmarks/bench_otlp_encoding.py`` measures both on the same spans).
Every OTLP/HTTP receiver accepts it: the OpenTelemetry Collector, Tempo, ours.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import logging
import ssl
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import StatusCode

from open_autoglm.telemetry._batch import SpanBundle
from open_autoglm.telemetry._request_spans import RequestSpan

logger = logging.getLogger(__name__)

_STATUS = {StatusCode.UNSET: 0, StatusCode.OK: 1, StatusCode.ERROR: 2}


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode()}
    if isinstance(value, Sequence):
        return {"arrayValue": {"values": [_value(v) for v in value]}}
    return {"stringValue": str(value)}


# Encoded key-value pairs, shared: most attributes repeat from span to span (method, route,
# model, address, small counts), and orjson writes one dict object as often as it appears.
# Keys carry the value's type (1, 1.0 and True are equal in Python). Floats are not cached
# (mostly unique); the cache is emptied when full.
_PAIRS: dict[tuple[str, type, Any], dict[str, Any]] = {}
_PAIRS_MAX = 8192


def _attributes(attributes: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if not attributes:
        return []
    out = []
    pairs = _PAIRS
    for k, v in attributes.items():
        t = type(v)
        if t is float:
            out.append({"key": k, "value": {"doubleValue": v}})
            continue
        if t is str or t is int or t is bool or t is tuple:
            key = (k, t, v)
            try:
                pair = pairs.get(key)
            except TypeError:  # a tuple holding something unhashable
                out.append({"key": k, "value": _value(v)})
                continue
            if pair is None:
                pair = {"key": k, "value": _value(v)}
                if len(pairs) >= _PAIRS_MAX:
                    pairs.clear()
                pairs[key] = pair
            out.append(pair)
        else:
            out.append({"key": k, "value": _value(v)})
    return out


def _span(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.get_span_context()
    assert ctx is not None
    out: dict[str, Any] = {
        "traceId": format(ctx.trace_id, "032x"),
        "spanId": format(ctx.span_id, "016x"),
        "name": span.name,
        "kind": span.kind.value + 1,  # OTLP counts from SPAN_KIND_UNSPECIFIED = 0
        "startTimeUnixNano": str(span.start_time or 0),
        "endTimeUnixNano": str(span.end_time or 0),
        "attributes": _attributes(span.attributes),
        "flags": 0x100 | int(ctx.trace_flags),  # HAS_IS_REMOTE_MASK | W3C trace flags
    }
    if span.parent is not None:
        out["parentSpanId"] = format(span.parent.span_id, "016x")
        if span.parent.is_remote:
            out["flags"] |= 0x200
    if ctx.trace_state:
        out["traceState"] = ctx.trace_state.to_header()
    if span.events:
        out["events"] = [
            {"timeUnixNano": str(e.timestamp), "name": e.name,
             "attributes": _attributes(e.attributes)}
            for e in span.events
        ]  # fmt: skip
    if span.links:
        out["links"] = [
            {
                "traceId": format(link.context.trace_id, "032x"),
                "spanId": format(link.context.span_id, "016x"),
                "traceState": link.context.trace_state.to_header(),
                "attributes": _attributes(link.attributes),
            }
            for link in span.links
        ]
    status = span.status
    if status.status_code is not StatusCode.UNSET:
        out["status"] = {"code": _STATUS[status.status_code]}
        if status.description:
            out["status"]["message"] = status.description
    return out


def _request_spans(request: RequestSpan, out: list[dict[str, Any]]) -> None:
    """The spans of one lean request, encoded straight from its fields (no SDK objects)."""
    trace_id = ""
    for context, parent, name, kind, start, end, attributes, events, status in request.parts():
        if not trace_id:
            trace_id = format(context.trace_id, "032x")
        flags = 0x100 | int(context.trace_flags)
        span: dict[str, Any] = {
            "traceId": trace_id,
            "spanId": format(context.span_id, "016x"),
            "name": name,
            "kind": kind.value + 1,
            "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(end),
            "attributes": _attributes(attributes),
        }
        if parent is not None:
            span["parentSpanId"] = format(parent.span_id, "016x")
            if parent.is_remote:
                flags |= 0x200
        span["flags"] = flags
        if context.trace_state:
            span["traceState"] = context.trace_state.to_header()
        if events:
            span["events"] = [
                {"timeUnixNano": str(at), "name": event, "attributes": _attributes(attrs)}
                for event, at, attrs in events
            ]
        if status.status_code is not StatusCode.UNSET:
            span["status"] = {"code": _STATUS[status.status_code]}
            if status.description:
                span["status"]["message"] = status.description
        out.append(span)


def _flatten(items: Sequence[ReadableSpan | SpanBundle]) -> Iterator[ReadableSpan | RequestSpan]:
    for item in items:
        if isinstance(item, ReadableSpan | RequestSpan):
            yield item
        else:  # a bundle of another kind: its SDK spans
            yield from item.readable_spans()


def encode_json(spans: Sequence[ReadableSpan | SpanBundle]) -> bytes:
    """An ``ExportTraceServiceRequest`` in the OTLP JSON encoding, of SDK spans and of lean
    request bundles (:class:`~open_autoglm.telemetry._request_spans.RequestSpan`)."""
    groups: dict[tuple[int, int], tuple[Resource, InstrumentationScope | None, list[Any]]] = {}
    for item in _flatten(spans):
        scope: InstrumentationScope | None
        if isinstance(item, RequestSpan):
            owner, scope = item.resource, item.scope
        else:
            owner, scope = item.resource, item.instrumentation_scope
        key = (id(owner), id(scope))
        group = groups.get(key)
        if group is None:
            group = groups[key] = (owner, scope, [])
        if isinstance(item, RequestSpan):
            _request_spans(item, group[2])
        else:
            group[2].append(_span(item))
    resources: dict[int, dict[str, Any]] = {}
    for owner, group_scope, encoded in groups.values():
        resource = resources.setdefault(
            id(owner),
            {"resource": {"attributes": _attributes(owner.attributes)}, "scopeSpans": []},
        )
        resource["scopeSpans"].append(
            {
                "scope": {"name": group_scope.name, "version": group_scope.version or ""}
                if group_scope
                else {},
                "spans": encoded,
            }
        )
    return orjson.dumps({"resourceSpans": list(resources.values())})


class OtlpJsonSpanExporter(SpanExporter):
    """POSTs spans as OTLP JSON to ``endpoint`` (the full ``.../v1/traces`` URL) over one
    kept-alive connection. A failed export is logged and reported as a failure (the batch
    processor retries), never raised.

    ``headers`` go with every request (``OTEL_EXPORTER_OTLP_HEADERS``: an auth token, say; their
    values are never logged); ``compression="gzip"`` compresses the body; ``certificate`` is a
    PEM file of the CA that signed an ``https`` endpoint's certificate.
    """

    def __init__(
        self,
        endpoint: str,
        timeout_s: float = 10.0,
        *,
        headers: Mapping[str, str] | None = None,
        compression: str = "none",
        certificate: str | None = None,
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"bad OTLP endpoint {endpoint!r}")
        if compression not in ("none", "gzip"):
            raise ValueError(f"unsupported compression {compression!r}; use gzip or none")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = parts.path or "/v1/traces"
        self._timeout_s = timeout_s
        self._gzip = compression == "gzip"
        self._headers = {**(headers or {}), "Content-Type": "application/json"}
        if self._gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._ssl: ssl.SSLContext | None = None
        if self._https:
            self._ssl = ssl.create_default_context(cafile=certificate)
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._https:
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout_s, context=self._ssl
                )
            else:
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout_s
                )
        return self._conn

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.export_items(spans)

    def export_items(self, spans: Sequence[ReadableSpan | SpanBundle]) -> SpanExportResult:
        """:meth:`export` of SDK spans and lean request bundles alike."""
        body = encode_json(spans)
        if self._gzip:
            body = gzip.compress(body, compresslevel=5)
        headers = self._headers
        with self._lock:
            for attempt in (1, 2):  # one retry on a connection the server closed meanwhile
                try:
                    conn = self._connection()
                    conn.request("POST", self._path, body, headers)
                    response = conn.getresponse()
                    response.read()
                except (OSError, http.client.HTTPException) as exc:
                    self._close()
                    if attempt == 2:
                        logger.warning("OTLP/JSON export failed: %s", type(exc).__name__)
                        return SpanExportResult.FAILURE
                    continue
                if 200 <= response.status < 300:
                    return SpanExportResult.SUCCESS
                logger.warning("OTLP/JSON export refused: HTTP %s", response.status)
                return SpanExportResult.FAILURE
        return SpanExportResult.FAILURE

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def shutdown(self) -> None:
        with self._lock:
            self._close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
