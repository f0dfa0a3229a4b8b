"""Embedded OTLP collector (HTTP protobuf/JSON and gRPC) and the DuckDB span store.

In this process: ``with Collector(CollectorConfig(db_path=...)) as c: ... c.http_endpoint``.
As a child process: ``with CollectorProcess(config) as child: ... child.grpc_endpoint``.
After it stops: ``with SpanStore(path) as store: store.trace(trace_id)``, or SQL on
``store.connection`` over the tables documented in :mod:`open_autoglm.collector._schema`.
"""

from open_autoglm.collector._collector import Collector, CollectorStats
from open_autoglm.collector._config import DEFAULT_MAX_BODY_BYTES, CollectorConfig
from open_autoglm.collector._decode import decode_json
from open_autoglm.collector._errors import (
    BodyTooLargeError,
    CollectorConfigError,
    CollectorError,
    CollectorStartError,
    DecodeError,
    UnsupportedMediaTypeError,
)
from open_autoglm.collector._expected import expected_record
from open_autoglm.collector._process import CollectorProcess, write_ready_file
from open_autoglm.collector._schema import SCHEMA_VERSION, SPANS_FILE, SPANS_TABLE_COLUMNS
from open_autoglm.collector._store import SpanEvent, SpanRecord, SpanStore, write_span_store

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "SCHEMA_VERSION",
    "SPANS_FILE",
    "SPANS_TABLE_COLUMNS",
    "BodyTooLargeError",
    "Collector",
    "CollectorConfig",
    "CollectorConfigError",
    "CollectorError",
    "CollectorProcess",
    "CollectorStartError",
    "CollectorStats",
    "DecodeError",
    "SpanEvent",
    "SpanRecord",
    "SpanStore",
    "UnsupportedMediaTypeError",
    "decode_json",
    "expected_record",
    "write_ready_file",
    "write_span_store",
]
