"""The report: a versioned, typed JSON document built from a run directory.

A run directory holds what a benchmark left behind: ``results.json`` (the load generator's
per-level results), ``requests.jsonl`` (one record per request), ``spans.duckdb`` (the span
store, when a collector ran), ``server_metrics.jsonl`` (samples of the server's /metrics) and
``run.json`` (what was run: backend, model, hardware). :func:`build_report` reads them all
and never needs the servers to be alive.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from open_autoglm import __version__
from open_autoglm.analysis._diagnosis import Diagnosis, diagnose
from open_autoglm.analysis._errors import AnalysisError
from open_autoglm.analysis._metric_samples import ResourceSummary, summarize_samples
from open_autoglm.analysis._stages import StageBreakdown, stage_breakdown

logger = logging.getLogger(__name__)

ReportVersion = Literal["open-autoglm.report/1"]
REPORT_VERSION: Final[ReportVersion] = "open-autoglm.report/1"

RESULTS_FILE: Final = "results.json"
RECORDS_FILE: Final = "requests.jsonl"
SPANS_FILE: Final = "spans.duckdb"
METRICS_FILE: Final = "server_metrics.jsonl"
RUN_FILE: Final = "run.json"
#: The server's span export counts, written when it stops (``serve --export-stats``).
EXPORT_STATS_FILE: Final = "span_export.json"


class ReportError(AnalysisError):
    """The run directory lacks what a report needs (say which file, and why)."""


@dataclass(frozen=True, slots=True)
class Report:
    version: ReportVersion
    tool_version: str
    created_unix_ns: int
    run: dict[str, Any]  # backend, model, simulated, hardware, server args, url
    load: dict[str, Any]  # the load generator's results document, levels included
    resources: ResourceSummary
    stages: StageBreakdown | None
    #: per level, 101 quantiles (0..100) of TTFT, TPOT and E2E in ms: the CDFs of the HTML
    distributions: list[dict[str, Any]] = field(default_factory=list)
    #: hotspots of the slow requests, load models over the levels (None without spans)
    diagnosis: Diagnosis | None = None
    notes: list[str] = field(default_factory=list)
    #: the server's side from Prometheus (``analyze --prometheus``): PrometheusSummary.to_json()
    prometheus: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2, default=str) + "\n", encoding="utf-8")
        tmp.replace(path)


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


def build_report(
    run_dir: Path,
    results_path: Path | None = None,
    *,
    spans_path: Path | None = None,
    prometheus: dict[str, Any] | None = None,
) -> Report:
    """The report of the run in ``run_dir`` (files named as in this module).

    ``spans_path`` replaces ``RUN_DIR/spans.duckdb`` (a store fetched from Tempo);
    ``prometheus`` is what Prometheus recorded of the run, added to the report as is."""
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir} is not a run directory")
    load = _load_json(results_path or run_dir / RESULTS_FILE, "the load generator's results")
    run_path = run_dir / RUN_FILE
    run = _load_json(run_path, "run metadata") if run_path.exists() else {}
    notes: list[str] = []
    records = Path(load.get("records_path") or run_dir / RECORDS_FILE)
    if not records.is_absolute() and not records.exists():
        records = run_dir / RECORDS_FILE
    spans = spans_path or run_dir / SPANS_FILE
    stages = None
    diagnosis = None
    if not spans.exists():
        notes.append("No span store in the run directory: no server stage breakdown.")
    elif not records.exists() or records.stat().st_size == 0:
        notes.append("No request records: no server stage breakdown.")
    else:
        stages = stage_breakdown(spans, records)
        diagnosis = diagnose(spans, records, list(load.get("levels", [])))
        notes.extend(diagnosis.notes)
        missing = stages.requests - stages.with_server_spans
        if missing:
            notes.append(
                f"{missing} of {stages.requests} successful requests have no server span in "
                "the store (sampling, or a server without tracing)."
            )
    export_path = run_dir / EXPORT_STATS_FILE
    if export_path.exists():
        export = _load_json(export_path, "the server's span export counts")
        dropped = int(export.get("spans_dropped", 0))
        if dropped:
            total = dropped + int(export.get("spans_exported", 0))
            notes.append(
                f"The server dropped {dropped} of {total} spans on export (queue limit, or a "
                "collector that never took them): their requests cannot be joined."
            )
    if run.get("simulated"):
        notes.append(
            "The backend is the `sim` simulator: these figures measure the tool, not an engine."
        )
    if load.get("client_bound"):
        notes.append(str(load.get("summary", "The client was the bottleneck.")))
    return Report(
        version=REPORT_VERSION,
        tool_version=__version__,
        created_unix_ns=time.time_ns(),
        run=run,
        load=load,
        resources=summarize_samples(run_dir / METRICS_FILE),
        stages=stages,
        distributions=distributions(records) if records.exists() else [],
        diagnosis=diagnosis,
        notes=notes,
        prometheus=prometheus,
    )


def distributions(records_path: Path) -> list[dict[str, Any]]:
    """Quantiles 0..100 of TTFT, TPOT and E2E (ms) per level, measured successes only.

    DuckDB's ``quantile_cont`` interpolates linearly, as numpy does by default.
    """
    import duckdb

    quantiles = [round(q / 100, 2) for q in range(101)]
    con = duckdb.connect()
    try:
        rows = con.execute(
            """
            SELECT level,
                quantile_cont(ttft_s * 1e3, $q) FILTER (WHERE ttft_s IS NOT NULL),
                quantile_cont(tpot_s * 1e3, $q) FILTER (WHERE tpot_s IS NOT NULL),
                quantile_cont(e2e_s * 1e3, $q) FILTER (WHERE e2e_s IS NOT NULL)
            FROM read_json($path, format = 'newline_delimited', columns = {
                level: 'BIGINT', phase: 'VARCHAR', status: 'VARCHAR', ttft_s: 'DOUBLE',
                tpot_s: 'DOUBLE', e2e_s: 'DOUBLE'})
            WHERE coalesce(phase, 'measure') = 'measure' AND status = 'ok'
            GROUP BY level ORDER BY level
            """,
            {"q": quantiles, "path": str(records_path)},
        ).fetchall()
    finally:
        con.close()
    out = []
    for level, ttft, tpot, e2e in rows:
        entry: dict[str, Any] = {"level": int(level)}
        for key, values in (("ttft_ms", ttft), ("tpot_ms", tpot), ("e2e_ms", e2e)):
            if values:
                entry[key] = [round(v, 4) for v in values]
        out.append(entry)
    return out
