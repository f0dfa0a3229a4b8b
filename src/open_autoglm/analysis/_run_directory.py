"""A run directory: every file a run leaves, by name, each opened at most once per report.

``results.json`` (the load generator's per-level results), ``requests.jsonl`` (one record per
request, the format of :mod:`open_autoglm.loadgen`), ``spans.duckdb`` (the span store of
:mod:`open_autoglm.collector`, when a collector ran), ``server_metrics.jsonl`` (samples of the
server's /metrics), ``run.json`` (what was run: backend, model, hardware),
``span_export.json`` (the server's span export counts), the report it gets
(``report.json``, ``report.html``) and the logs of the managed processes.

Paths reach DuckDB only as literal files: the span store through :class:`SpanStore` (a file
path, never a pattern), the records as an open file (:func:`load_records_table`), so a
directory called ``runs/run[1]`` never reads ``runs/run1``.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from open_autoglm.analysis._errors import AnalysisError
from open_autoglm.collector import SPANS_FILE, CollectorError, SpanStore
from open_autoglm.loadgen import RECORDS_FILE, load_records_table

if TYPE_CHECKING:
    import duckdb

RESULTS_FILE: Final = "results.json"
METRICS_FILE: Final = "server_metrics.jsonl"
MEMORY_FILE: Final = "server_memory.jsonl"  # peak memory per interval (run/_memory_watch.py)
RUN_FILE: Final = "run.json"
#: The server's span export counts, written when it stops (``serve --export-stats``).
EXPORT_STATS_FILE: Final = "span_export.json"
REPORT_FILE: Final = "report.json"
REPORT_HTML_FILE: Final = "report.html"
#: Spans fetched from Tempo by ``analyze --tempo`` (the embedded store is left as it is).
TEMPO_SPANS_FILE: Final = "tempo_spans.duckdb"
COLLECTOR_LOG: Final = "collector.log"
SERVER_LOG: Final = "server.log"
#: The table of the records in :meth:`RunDirectory.database`.
RECORDS_TABLE: Final = "requests"


class ReportError(AnalysisError):
    """The run directory lacks what a report needs (say which file, and why)."""


def find_records(directory: Path, given: str | Path | None = None) -> Path | None:
    """The records file of the run in ``directory``: ``given`` (the results'
    ``records_path``; a relative one is tried under ``directory``, then as is), else
    ``directory/requests.jsonl``; None when none of them is a file."""
    candidates: list[Path] = []
    if given:
        path = Path(given)
        candidates += [path] if path.is_absolute() else [directory / path, path]
    candidates.append(directory / RECORDS_FILE)
    return next((c for c in candidates if c.is_file()), None)


class RunDirectory:
    """The files of one run. ``with RunDirectory(path) as run: run.results(); run.database()``.

    ``results_path`` and ``spans_path`` replace ``results.json`` and ``spans.duckdb`` (a
    store fetched from Tempo). Each file is read at most once: the JSON documents are kept,
    the span store stays open (read-only, its schema checked) until :meth:`close`.
    """

    def __init__(
        self, path: Path, *, results_path: Path | None = None, spans_path: Path | None = None
    ) -> None:
        self.path = path
        self.results_path = results_path or path / RESULTS_FILE
        self.spans_path = spans_path or path / SPANS_FILE
        self.metrics_path = path / METRICS_FILE
        self.memory_path = path / MEMORY_FILE
        self.run_path = path / RUN_FILE
        self.export_stats_path = path / EXPORT_STATS_FILE
        self.report_path = path / REPORT_FILE
        self.html_path = path / REPORT_HTML_FILE
        self.tempo_spans_path = path / TEMPO_SPANS_FILE
        self.logs = (path / COLLECTOR_LOG, path / SERVER_LOG)
        self._results: dict[str, Any] | None = None
        self._run: dict[str, Any] | None = None
        self._store: SpanStore | None = None
        self._con: duckdb.DuckDBPyConnection | None = None

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    def require(self) -> RunDirectory:
        """Raise :class:`ReportError` unless the directory exists; returns self."""
        if not self.path.is_dir():
            raise ReportError(f"{self.path} is not a run directory")
        return self

    def results(self) -> dict[str, Any]:
        """The load generator's results document; :class:`ReportError` if missing or bad."""
        if self._results is None:
            self._results = _load_json(self.results_path, "the load generator's results")
        return self._results

    def run_info(self) -> dict[str, Any]:
        """``run.json`` (backend, model, hardware), ``{}`` when the run has none."""
        if self._run is None:
            exists = self.run_path.exists()
            self._run = _load_json(self.run_path, "run metadata") if exists else {}
        return self._run

    def export_stats(self) -> dict[str, Any]:
        """The server's span export counts (``spans_exported``, ``spans_dropped``, ...),
        ``{}`` when the run has none (an external server, an older run)."""
        path = self.export_stats_path
        return _load_json(path, "the server's span export counts") if path.exists() else {}

    @property
    def records_path(self) -> Path:
        """Where the records are: the results' ``records_path`` if it names a file, else
        ``requests.jsonl`` here (which may not exist)."""
        try:
            given = self.results().get("records_path")
        except ReportError:  # no readable results: the records are where they are by default
            given = None
        return find_records(self.path, given) or self.path / RECORDS_FILE

    def has_records(self) -> bool:
        """The records file exists and holds something."""
        path = self.records_path
        return path.is_file() and path.stat().st_size > 0

    def has_spans(self) -> bool:
        return self.spans_path.exists()

    def span_store(self) -> SpanStore | None:
        """The span store, opened once (read-only, schema checked); None when there is none.

        Raises :class:`ReportError` on a file that is not a span store of this version."""
        if self._store is None and self.has_spans():
            try:
                self._store = SpanStore(self.spans_path)
            except CollectorError as exc:
                raise ReportError(str(exc)) from exc
        return self._store

    def database(self) -> duckdb.DuckDBPyConnection:
        """One DuckDB connection for the report, made once: the span store's (tables
        ``spans``, ``span_events``) when the run has one, else an in-memory one; with the
        records, when there are any, as the TEMP table ``requests`` (columns of
        :data:`~open_autoglm.loadgen.RECORD_COLUMNS` plus ``measured`` and ``ok``)."""
        if self._con is None:
            import duckdb

            store = self.span_store()
            con = store.connection if store is not None else duckdb.connect()
            path = self.records_path
            if path.is_file():
                try:
                    load_records_table(con, path, RECORDS_TABLE)
                except (OSError, duckdb.Error) as exc:
                    if store is None:
                        con.close()
                    raise ReportError(f"{path} cannot be read: {exc}") from exc
            self._con = con
        return self._con

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        elif self._con is not None:
            self._con.close()
        self._store = self._con = None

    def __enter__(self) -> RunDirectory:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _load_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path} is missing: {what}") from None
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path} cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path} is not a JSON object")
    return data
