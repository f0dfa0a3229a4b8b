"""The embedded collector in this process: receivers plus the span writer, started together."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from open_autoglm.collector._config import CollectorConfig
from open_autoglm.collector._grpc import GrpcReceiver
from open_autoglm.collector._http import TRACES_PATH, HttpReceiver
from open_autoglm.collector._ingest import Ingest
from open_autoglm.collector._writer import SpanWriter

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CollectorStats:
    """Counters of one collector session; also stored in the ``collector_sessions`` table.

    ``refused_spans`` (queue full) and ``write_failed_spans`` stay 0 in a healthy run;
    ``max_queued_spans`` far below ``CollectorConfig.max_queued_spans`` shows the writer kept up.
    """

    accepted_spans: int
    rejected_spans: int
    refused_spans: int
    stored_spans: int
    stored_events: int
    write_failed_spans: int
    queued_spans: int
    max_queued_spans: int
    flushes: int
    max_flush_ms: float
    http_requests: int
    grpc_requests: int


class Collector:
    """Receives OTLP traces over HTTP and gRPC and stores them in a DuckDB file.

    ``with Collector(config) as collector:`` starts it (ports bound, file open) and stops it
    on exit; :meth:`stop` returns once every accepted span is in the file.
    """

    def __init__(self, config: CollectorConfig) -> None:
        self.config = config
        self._writer = SpanWriter(
            config.db_path,
            flush_rows=config.flush_rows,
            flush_interval_s=config.flush_interval_s,
            max_queued_spans=config.max_queued_spans,
        )
        self._ingest = Ingest(self._writer)
        self._http: HttpReceiver | None = None
        self._grpc: GrpcReceiver | None = None
        self._started = False
        self._stopped = False

    def start(self) -> Collector:
        if self._started:
            return self
        self._started = True
        config = self.config
        self._writer.open()
        try:
            if config.http_port is not None:
                self._http = HttpReceiver(
                    self._ingest, config.host, config.http_port, config.max_body_bytes
                )
                self._http.start()
            if config.grpc_port is not None:
                self._grpc = GrpcReceiver(
                    self._ingest,
                    config.host,
                    config.grpc_port,
                    config.max_body_bytes,
                    config.grpc_workers,
                )
                self._grpc.start()
        except BaseException:
            self.stop()
            raise
        logger.info(
            "collector listening: OTLP/HTTP port %s, OTLP/gRPC port %s, span store %s",
            self.http_port,
            self.grpc_port,
            config.db_path,
        )
        return self

    def stop(self) -> CollectorStats:
        """Stop receiving, store every accepted span, close the file. Idempotent."""
        if not self._stopped:
            self._stopped = True
            for receiver in (self._http, self._grpc):
                if receiver is not None:
                    try:
                        receiver.stop()
                    except Exception:
                        logger.exception("stopping a receiver failed")
            self._writer.close(self._ingest.counters())
            stats = self.stats()
            logger.info(
                "collector stopped: %d spans stored, %d rejected, %d refused",
                stats.stored_spans,
                stats.rejected_spans,
                stats.refused_spans,
            )
        return self.stats()

    def stats(self) -> CollectorStats:
        writer = self._writer.stats()
        counters = self._ingest.counters()
        return CollectorStats(
            accepted_spans=writer.accepted_spans,
            rejected_spans=counters["rejected_spans"],
            refused_spans=writer.refused_spans,
            stored_spans=writer.stored_spans,
            stored_events=writer.stored_events,
            write_failed_spans=writer.write_failed_spans,
            queued_spans=writer.queued_spans,
            max_queued_spans=writer.max_queued_spans,
            flushes=writer.flushes,
            max_flush_ms=writer.max_flush_ms,
            http_requests=counters["http_requests"],
            grpc_requests=counters["grpc_requests"],
        )

    @property
    def http_port(self) -> int | None:
        return self._http.port if self._http is not None else None

    @property
    def grpc_port(self) -> int | None:
        return self._grpc.port if self._grpc is not None else None

    @property
    def http_endpoint(self) -> str | None:
        """Base URL for ``OTEL_EXPORTER_OTLP_ENDPOINT`` with ``http/protobuf``."""
        return (
            None
            if self.http_port is None
            else f"http://{_url_host(self.config.host)}:{self.http_port}"
        )

    @property
    def traces_url(self) -> str | None:
        """Full URL for ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (``.../v1/traces``)."""
        return None if self.http_endpoint is None else self.http_endpoint + TRACES_PATH

    @property
    def grpc_endpoint(self) -> str | None:
        """Address for ``OTEL_EXPORTER_OTLP_ENDPOINT`` with ``grpc`` (plain text)."""
        return (
            None
            if self.grpc_port is None
            else f"http://{_url_host(self.config.host)}:{self.grpc_port}"
        )

    def ready_info(self) -> dict[str, Any]:
        """What a parent process needs: ports, endpoints, the file, this process's id."""
        return {
            "pid": os.getpid(),
            "host": self.config.host,
            "http_port": self.http_port,
            "grpc_port": self.grpc_port,
            "http_endpoint": self.http_endpoint,
            "traces_url": self.traces_url,
            "grpc_endpoint": self.grpc_endpoint,
            "db_path": str(self.config.db_path),
        }

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
