"""The path every receiver shares: decoded request in, rows queued, OTLP answer out."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from open_autoglm.collector._decode import flatten
from open_autoglm.collector._writer import SpanWriter


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What happened to one export request."""

    accepted: int
    rejected: int
    error_message: str
    refused: bool  # the writer's queue was full: nothing stored, the exporter should retry
    #: every span had an invalid id (all zeros, missing, wrong length): a 4xx, not a retry
    invalid: bool = False

    def response(self) -> ExportTraceServiceResponse:
        """The OTLP answer: ``partial_success`` set only when spans were rejected."""
        response = ExportTraceServiceResponse()
        if self.rejected:
            response.partial_success.rejected_spans = self.rejected
            response.partial_success.error_message = self.error_message
        return response


class Ingest:
    """Flattens requests into the writer and counts what the receivers saw."""

    def __init__(self, writer: SpanWriter) -> None:
        self._writer = writer
        self._lock = threading.Lock()
        self.rejected_spans = 0
        self.requests = {"http": 0, "grpc": 0}

    def export(self, request: ExportTraceServiceRequest, protocol: str) -> ExportResult:
        batch = flatten(request)
        if batch.rejected and not batch.spans:
            with self._lock:
                self.requests[protocol] += 1
                self.rejected_spans += batch.rejected
            return ExportResult(0, batch.rejected, batch.error_message(), False, invalid=True)
        queued = self._writer.submit(batch)
        with self._lock:
            self.requests[protocol] += 1
            self.rejected_spans += batch.rejected
        return ExportResult(
            accepted=len(batch.spans) if queued else 0,
            rejected=batch.rejected,
            error_message=batch.error_message(),
            refused=not queued,
        )

    def counters(self) -> dict[str, int]:
        with self._lock:
            return {
                "rejected_spans": self.rejected_spans,
                "http_requests": self.requests["http"],
                "grpc_requests": self.requests["grpc"],
            }
