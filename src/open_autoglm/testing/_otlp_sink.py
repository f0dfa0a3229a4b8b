"""A minimal OTLP/HTTP trace receiver (protobuf or JSON) that keeps spans in memory, for tests
and benchmarks.

Not the collector (see :mod:`open_autoglm.collector`): it stores decoded protobuf spans in a
list so a test can assert on exactly what a process exported.
"""

from __future__ import annotations

import gzip
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

#: Seconds an idle keep-alive connection is kept open by the sink.
_IDLE_TIMEOUT_S = 5.0


class _QuietServer(ThreadingHTTPServer):
    """A client that goes away mid-connection (a reset, a broken pipe) is not an error of the
    sink: ``socketserver`` would print a traceback to whatever ``sys.stderr`` is at that
    moment, possibly another test's captured output. Other errors print as usual."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


@dataclass(frozen=True, slots=True)
class SinkSpan:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    service_name: str


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(x) for x in v.array_value.values)
    return getattr(v, kind) if kind else None


class OtlpSink:
    """``POST /v1/traces`` (protobuf, optionally gzip) on 127.0.0.1, port chosen by the OS."""

    def __init__(self, keep_spans: bool = True) -> None:
        """``keep_spans=False`` only counts spans (an OTLP JSON body is not even decoded: one
        per ``startTimeUnixNano`` key), so a benchmark's sink costs next to nothing."""
        self.spans: list[SinkSpan] = []
        self.requests = 0
        self.span_count = 0
        self._keep = keep_spans
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # an idle keep-alive connection ends after this: its thread does not outlive the
            # test by minutes, to fail later on the client's reset (see _QuietServer)
            timeout = _IDLE_TIMEOUT_S

            def log_message(self, *args: Any) -> None:  # silence the default stderr log
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    if not sink._keep:  # counting only: no Python decode (benchmarks)
                        sink._count(body.count(b'"startTimeUnixNano"'))
                    else:
                        from open_autoglm.collector import decode_json

                        sink._ingest(decode_json(body))
                else:
                    sink._ingest(ExportTraceServiceRequest.FromString(body))
                payload = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _count(self, spans: int) -> None:
        with self._lock:
            self.requests += 1
            self.span_count += spans

    def _ingest(self, request: ExportTraceServiceRequest) -> None:
        spans: list[SinkSpan] = []
        count = 0
        for rs in request.resource_spans:
            resource = {a.key: _value(a.value) for a in rs.resource.attributes}
            service = str(resource.get("service.name", ""))
            for ss in rs.scope_spans:
                count += len(ss.spans)
                if not self._keep:
                    continue
                for s in ss.spans:
                    spans.append(
                        SinkSpan(
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_span_id=s.parent_span_id.hex(),
                            name=s.name,
                            kind=s.kind,
                            start_ns=s.start_time_unix_nano,
                            end_ns=s.end_time_unix_nano,
                            attributes={a.key: _value(a.value) for a in s.attributes},
                            service_name=service,
                        )
                    )
        with self._lock:
            self.requests += 1
            self.span_count += count
            self.spans.extend(spans)

    def wait_for(self, predicate: Any, timeout_s: float = 10.0) -> list[SinkSpan]:
        """Poll until ``predicate(spans)`` is true; return the spans (raise on timeout)."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                spans = list(self.spans)
            if predicate(spans):
                return spans
            if time.monotonic() > deadline:
                raise TimeoutError(f"spans not seen in {timeout_s} s; have {len(spans)}")
            time.sleep(0.05)

    def __enter__(self) -> OtlpSink:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
