"""The collector's settings, built once (in the CLI or by the caller) and checked then."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from open_autoglm.collector._errors import CollectorConfigError

#: The OTLP/HTTP body limit, as the OpenTelemetry Collector's default ``max_request_body_size``.
DEFAULT_MAX_BODY_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    """Where the collector listens and how it writes.

    ``http_port``/``grpc_port``: 0 picks a free port, ``None`` turns that receiver off.
    ``flush_interval_s``: the longest a received span waits before it is appended to the
    file; ``flush_rows``: append sooner once this many are waiting. ``max_queued_spans``:
    past this many spans waiting for the writer, exports are refused (HTTP 503, gRPC
    ``UNAVAILABLE``: the OTLP exporters retry them), so memory stays bounded.
    """

    db_path: Path
    host: str = "127.0.0.1"
    http_port: int | None = 0
    grpc_port: int | None = 0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    flush_interval_s: float = 0.5
    flush_rows: int = 32_768
    max_queued_spans: int = 1_000_000
    grpc_workers: int = 4

    def __post_init__(self) -> None:
        if not isinstance(self.db_path, Path):
            object.__setattr__(self, "db_path", Path(self.db_path))
        if not self.db_path.parent.is_dir():
            raise CollectorConfigError(
                f"the folder of the span store {self.db_path} does not exist"
            )
        if self.db_path.is_dir():
            raise CollectorConfigError(f"the span store {self.db_path} is a folder")
        if "?" in str(self.db_path):
            raise CollectorConfigError(
                f"the span store path {self.db_path} has a '?': DuckDB cannot keep a database "
                "there (it reads what follows '?' as options); choose a name without one"
            )
        for name in ("http_port", "grpc_port"):
            port = getattr(self, name)
            if port is not None and not 0 <= port <= 65535:
                raise CollectorConfigError(f"{name.replace('_', ' ')} {port} is not in 0..65535")
        if self.http_port is None and self.grpc_port is None:
            raise CollectorConfigError("at least one of the HTTP and gRPC receivers must be on")
        if self.http_port is not None and self.http_port == self.grpc_port and self.http_port != 0:
            raise CollectorConfigError(f"HTTP and gRPC cannot share port {self.http_port}")
        if not self.host:
            raise CollectorConfigError("the host to listen on is empty")
        if self.max_body_bytes < 1024:
            raise CollectorConfigError("max body bytes must be at least 1024")
        if not self.flush_interval_s > 0:
            raise CollectorConfigError("the flush interval must be above 0 seconds")
        if self.flush_rows < 1 or self.max_queued_spans < 1 or self.grpc_workers < 1:
            raise CollectorConfigError(
                "flush rows, max queued spans and gRPC workers must be at least 1"
            )
