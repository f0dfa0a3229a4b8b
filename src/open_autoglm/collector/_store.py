"""The span store file: read it (:class:`SpanStore`), or write one in bulk
(:func:`write_span_store`) outside a running collector.

For analysis, :attr:`SpanStore.connection` is a DuckDB connection on the file; the tables are
described in :mod:`open_autoglm.collector._schema`. Every open checks the schema version. Open
the file after the collector has stopped: DuckDB lets one process write a file, and no other
process open it meanwhile. Nothing else in the package connects to a span store.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import duckdb
import numpy as np
import numpy.typing as npt

from open_autoglm.collector._errors import CollectorError
from open_autoglm.collector._schema import (
    SCHEMA_VERSION,
    SPANS_FILE,
    SPANS_TABLE_COLUMNS,
    create_schema,
)

_SPAN_SELECT: Final = ", ".join(SPANS_TABLE_COLUMNS)
_EVENT_COLUMNS: Final = ("trace_id", "span_id", "event_index", "name", "time_unix_ns", "attributes")
_JSON_COLUMNS: Final = frozenset({"attributes", "resource_attributes", "links"})


@dataclass(frozen=True, slots=True)
class SpanEvent:
    name: str
    time_unix_ns: int
    attributes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One stored span, JSON columns decoded."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    service_name: str | None
    start_unix_ns: int
    end_unix_ns: int
    duration_ns: int
    status_code: str
    status_message: str | None
    attributes: dict[str, Any]
    resource_attributes: dict[str, Any]
    scope_name: str | None
    scope_version: str | None
    trace_state: str | None
    links: list[dict[str, Any]]
    events: tuple[SpanEvent, ...] = ()


class SpanStore:
    """A span store file, opened read-only by default.

    ``with SpanStore(path) as store: store.trace("4bf9...")``. Raises :class:`CollectorError`
    when the file is missing, locked by a running collector, or not a span store.
    """

    def __init__(self, path: Path | str, *, read_only: bool = True) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise CollectorError(f"no span store at {self.path}")
        try:
            self._con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            raise CollectorError(f"cannot open span store {self.path}: {exc}") from exc
        try:
            rows = self._con.execute(
                "SELECT value FROM store_meta WHERE key = 'schema_version'"
            ).fetchall()  # fetched to the end: an unfinished result blocks the connection
        except duckdb.Error as exc:
            self._con.close()
            raise CollectorError(f"{self.path} is not a span store: {exc}") from exc
        self.schema_version = int(rows[0][0]) if rows else 0
        if self.schema_version != SCHEMA_VERSION:
            self._con.close()
            raise CollectorError(
                f"{self.path} has span store schema {self.schema_version}, "
                f"this version reads {SCHEMA_VERSION}"
            )

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """DuckDB on the file: SQL over ``spans``, ``span_events``, ``collector_sessions``."""
        return self._con

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> SpanStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def span_count(self, name: str | None = None) -> int:
        if name is None:
            row = self._con.execute("SELECT count(*) FROM spans").fetchone()
        else:
            row = self._con.execute("SELECT count(*) FROM spans WHERE name = ?", [name]).fetchone()
        return int(row[0]) if row else 0

    def trace_count(self) -> int:
        row = self._con.execute("SELECT count(DISTINCT trace_id) FROM spans").fetchone()
        return int(row[0]) if row else 0

    def name_counts(self) -> dict[str, int]:
        """Span name to number of spans, most frequent first."""
        rows = self._con.execute(
            "SELECT name, count(*) AS n FROM spans GROUP BY name ORDER BY n DESC, name"
        ).fetchall()
        return {name: int(n) for name, n in rows}

    def trace_ids(self) -> list[str]:
        rows = self._con.execute("SELECT DISTINCT trace_id FROM spans ORDER BY trace_id").fetchall()
        return [row[0] for row in rows]

    def trace(self, trace_id: str) -> list[SpanRecord]:
        """Every span of one trace (32 hex digits, any case), by start time, events included."""
        return self._records("WHERE trace_id = ?", [trace_id.lower()])

    def spans_named(self, name: str, *, limit: int | None = None) -> list[SpanRecord]:
        """Spans called ``name``, by start time, events included."""
        return self._records("WHERE name = ?", [name], limit=limit)

    def columns(
        self,
        names: Sequence[str],
        *,
        where: str | None = None,
        params: Sequence[Any] = (),
        table: str = "spans",
    ) -> dict[str, list[Any]]:
        """Columns as lists, no DataFrame: ``columns(["trace_id", "duration_ns"],
        where="name = ?", params=["decode"])``. ``where`` is SQL from the caller's own code,
        never from user input; column and table names are checked against the schema."""
        known = self._table_columns(table)
        unknown = [name for name in names if name not in known]
        if unknown:
            raise CollectorError(f"unknown {table} columns: {', '.join(unknown)}")
        if not names:
            return {}
        sql = f"SELECT {', '.join(names)} FROM {table}"
        if where:
            sql += f" WHERE {where}"
        rows = self._con.execute(sql, list(params)).fetchall()
        if not rows:
            return {name: [] for name in names}
        return {
            name: list(values) for name, values in zip(names, zip(*rows, strict=True), strict=True)
        }

    def sessions(self) -> list[dict[str, Any]]:
        """The ``collector_sessions`` rows, oldest first: how each collector run went."""
        cursor = self._con.execute("SELECT * FROM collector_sessions ORDER BY started_unix_ns")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _table_columns(self, table: str) -> set[str]:
        if table not in ("spans", "span_events", "collector_sessions"):
            raise CollectorError(f"unknown span store table {table!r}")
        rows = self._con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]
        ).fetchall()
        return {row[0] for row in rows}

    def _records(
        self, where: str, params: list[Any], *, limit: int | None = None
    ) -> list[SpanRecord]:
        sql = f"SELECT {_SPAN_SELECT} FROM spans {where} ORDER BY start_unix_ns, span_id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = self._con.execute(sql, params).fetchall()
        if not rows:
            return []
        events = self._events_for(where, params)
        records = []
        for row in rows:
            values = dict(zip(SPANS_TABLE_COLUMNS, row, strict=True))
            values["attributes"] = _json(values["attributes"], {})
            values["resource_attributes"] = _json(values["resource_attributes"], {})
            values["links"] = _json(values["links"], [])
            key = (values["trace_id"], values["span_id"])
            records.append(SpanRecord(**values, events=tuple(events.get(key, ()))))
        return records

    def _events_for(self, where: str, params: list[Any]) -> dict[tuple[str, str], list[SpanEvent]]:
        rows = self._con.execute(
            "SELECT e.trace_id, e.span_id, e.name, e.time_unix_ns, e.attributes "
            f"FROM span_events e JOIN (SELECT DISTINCT trace_id, span_id FROM spans {where}) s "
            "ON e.trace_id = s.trace_id AND e.span_id = s.span_id "
            "ORDER BY e.trace_id, e.span_id, e.event_index",
            params,
        ).fetchall()
        out: dict[tuple[str, str], list[SpanEvent]] = {}
        for trace_id, span_id, name, time_ns, attributes in rows:
            out.setdefault((trace_id, span_id), []).append(
                SpanEvent(name=name, time_unix_ns=time_ns, attributes=_json(attributes, {}))
            )
        return out


def _json(text: str | None, empty: Any) -> Any:
    return empty if text is None else json.loads(text)


Columns = Mapping[str, Sequence[Any] | npt.NDArray[Any]]


def write_span_store(path: Path, spans: Columns, events: Columns | None = None) -> Path:
    """Append spans to a span store file (created with the schema when missing); returns
    ``path``. ``spans`` holds columns of the ``spans`` table, ``trace_id`` required: missing
    ones are NULL, ``duration_ns`` is computed, ``kind`` is INTERNAL and ``status_code`` UNSET
    by default; dict and list values of the JSON columns are encoded. ``events`` holds the
    ``span_events`` columns. For stores made outside a collector (Tempo, synthetic runs).

    Raises :class:`CollectorError` when the file cannot be opened for writing."""
    if "?" in str(path):
        # DuckDB reads what follows '?' as options when it names the write-ahead log, so a
        # database under such a path cannot commit: write it elsewhere, then move it there
        with tempfile.TemporaryDirectory(prefix="open-autoglm-") as tmp:
            staging = Path(tmp) / SPANS_FILE
            if path.exists():
                shutil.copyfile(path, staging)
            _write_span_store(staging, spans, events)
            shutil.move(staging, path)
        return path
    _write_span_store(path, spans, events)
    return path


def _write_span_store(path: Path, spans: Columns, events: Columns | None) -> None:
    n = len(spans["trace_id"])
    columns: dict[str, npt.NDArray[Any]] = {}
    for name in SPANS_TABLE_COLUMNS:
        if name == "duration_ns":
            continue
        if name in spans:
            columns[name] = _column(spans[name])
        elif name == "kind":
            columns[name] = np.full(n, "INTERNAL", dtype=object)
        elif name == "status_code":
            columns[name] = np.full(n, "UNSET", dtype=object)
        else:
            columns[name] = np.full(n, None, dtype=object)
    try:
        con = duckdb.connect(str(path))
    except duckdb.Error as exc:
        raise CollectorError(f"cannot open span store {path} for writing: {exc}") from exc
    try:
        create_schema(con)
        if n:
            con.register("_open_autoglm_spans", columns)
            select = ", ".join(
                "CAST(end_unix_ns AS BIGINT) - CAST(start_unix_ns AS BIGINT)"
                if c == "duration_ns"
                else f"CAST({c} AS BIGINT)"
                if c in ("start_unix_ns", "end_unix_ns")
                else f"CAST({c} AS JSON)"
                if c in _JSON_COLUMNS
                else c
                for c in SPANS_TABLE_COLUMNS
            )
            con.execute(f"INSERT INTO spans SELECT {select} FROM _open_autoglm_spans")
            con.unregister("_open_autoglm_spans")
        if events is not None and len(events["trace_id"]):
            con.register("_open_autoglm_events", {c: _column(events[c]) for c in _EVENT_COLUMNS})
            con.execute(
                "INSERT INTO span_events SELECT trace_id, span_id, CAST(event_index AS INTEGER), "
                "name, CAST(time_unix_ns AS BIGINT), CAST(attributes AS JSON) "
                "FROM _open_autoglm_events"
            )
            con.unregister("_open_autoglm_events")
    finally:
        con.close()


def _column(values: Sequence[Any] | npt.NDArray[Any]) -> npt.NDArray[Any]:
    array = np.asarray(values)
    if array.dtype.kind in "iu":
        return array.astype(np.int64)
    if array.dtype.kind == "f":
        return array.astype(np.float64)
    return np.asarray(
        [
            None if v is None else (json.dumps(v) if isinstance(v, dict | list) else v)
            for v in values
        ],
        dtype=object,
    )
