"""The span store's schema: DuckDB tables written by the collector, read by analysis.

Version 1. One row per span in ``spans``; its events, one row each, in ``span_events``; one row
per collector session (start to stop) in ``collector_sessions``.

``spans``
    ``trace_id`` VARCHAR, 32 lowercase hex digits (the same text as ``traceparent`` and the load
    generator's records, so joins need no conversion); ``span_id`` VARCHAR, 16 hex;
    ``parent_span_id`` VARCHAR, 16 hex, NULL for a root span; ``name``; ``kind`` one of
    ``INTERNAL SERVER CLIENT PRODUCER CONSUMER UNSPECIFIED``; ``service_name`` (the resource's
    ``service.name``); ``start_unix_ns``, ``end_unix_ns``, ``duration_ns`` BIGINT nanoseconds;
    ``status_code`` one of ``UNSET OK ERROR``; ``status_message`` (NULL when empty);
    ``attributes`` JSON object, values typed as sent (string, number, bool, array, object;
    bytes as base64), NULL when the span has none: read one with
    ``attributes->>'$."gen_ai.usage.input_tokens"'`` (text) or
    ``CAST(attributes->'$."gen_ai.usage.input_tokens"' AS BIGINT)``;
    ``resource_attributes`` JSON object; ``scope_name``, ``scope_version``; ``trace_state``;
    ``links`` JSON array of ``{trace_id, span_id, trace_state, attributes}`` or NULL.

``span_events``
    ``trace_id``, ``span_id`` (join to ``spans``), ``event_index`` (order within the span),
    ``name``, ``time_unix_ns`` BIGINT, ``attributes`` JSON.

Rows are appended in arrival order. When the collector stops it builds an ART index on
``spans(trace_id)`` (point look-ups of one trace); grouping by ``name`` and hash joins on
``trace_id`` need no index in DuckDB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import duckdb

SCHEMA_VERSION: Final = 1
#: The span store's file name in a run directory.
SPANS_FILE: Final = "spans.duckdb"

SPANS_DDL: Final = """
CREATE TABLE IF NOT EXISTS spans (
    trace_id VARCHAR NOT NULL,
    span_id VARCHAR NOT NULL,
    parent_span_id VARCHAR,
    name VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    service_name VARCHAR,
    start_unix_ns BIGINT,
    end_unix_ns BIGINT,
    duration_ns BIGINT,
    status_code VARCHAR NOT NULL,
    status_message VARCHAR,
    attributes JSON,
    resource_attributes JSON,
    scope_name VARCHAR,
    scope_version VARCHAR,
    trace_state VARCHAR,
    links JSON
)
"""

EVENTS_DDL: Final = """
CREATE TABLE IF NOT EXISTS span_events (
    trace_id VARCHAR NOT NULL,
    span_id VARCHAR NOT NULL,
    event_index INTEGER NOT NULL,
    name VARCHAR NOT NULL,
    time_unix_ns BIGINT,
    attributes JSON
)
"""

SESSIONS_DDL: Final = """
CREATE TABLE IF NOT EXISTS collector_sessions (
    started_unix_ns BIGINT NOT NULL,
    stopped_unix_ns BIGINT NOT NULL,
    accepted_spans BIGINT NOT NULL,
    rejected_spans BIGINT NOT NULL,
    refused_spans BIGINT NOT NULL,
    stored_spans BIGINT NOT NULL,
    stored_events BIGINT NOT NULL,
    write_failed_spans BIGINT NOT NULL,
    max_queued_spans BIGINT NOT NULL,
    max_flush_ms DOUBLE NOT NULL,
    http_requests BIGINT NOT NULL,
    grpc_requests BIGINT NOT NULL,
    tool_version VARCHAR NOT NULL
)
"""

META_DDL: Final = """
CREATE TABLE IF NOT EXISTS store_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)
"""

TRACE_INDEX_DDL: Final = "CREATE INDEX IF NOT EXISTS spans_trace_id ON spans (trace_id)"

#: The ``spans`` columns in table order.
SPANS_TABLE_COLUMNS: Final = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "service_name",
    "start_unix_ns",
    "end_unix_ns",
    "duration_ns",
    "status_code",
    "status_message",
    "attributes",
    "resource_attributes",
    "scope_name",
    "scope_version",
    "trace_state",
    "links",
)


def create_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the tables (where missing) and stamp the schema version on a writable store."""
    for ddl in (SPANS_DDL, EVENTS_DDL, SESSIONS_DDL, META_DDL):
        con.execute(ddl)
    con.execute(
        "INSERT OR REPLACE INTO store_meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
    )
