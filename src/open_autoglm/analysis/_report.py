"""The report: a versioned, typed JSON document built from a run directory.

A run directory (:class:`~open_autoglm.analysis._run_directory.RunDirectory`) holds what a
benchmark left behind: ``results.json``, ``requests.jsonl``, ``spans.duckdb`` (when a
collector ran), ``server_metrics.jsonl`` and ``run.json``. :func:`build_report` reads each
once and never needs the servers to be alive.
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
from open_autoglm.analysis._metric_samples import ResourceSummary, summarize_samples
from open_autoglm.analysis._run_directory import (
    METRICS_FILE,
    RECORDS_TABLE,
    RESULTS_FILE,
    RUN_FILE,
    ReportError,
    RunDirectory,
)
from open_autoglm.analysis._stages import StageBreakdown, stage_breakdown
from open_autoglm.collector import SPANS_FILE
from open_autoglm.loadgen import RECORDS_FILE

logger = logging.getLogger(__name__)

ReportVersion = Literal["open-autoglm.report/1"]
REPORT_VERSION: Final[ReportVersion] = "open-autoglm.report/1"

#: The run directory's file names are importable from here too (the managed run reads them).
__all__ = [
    "METRICS_FILE",
    "RECORDS_FILE",
    "REPORT_VERSION",
    "RESULTS_FILE",
    "RUN_FILE",
    "SPANS_FILE",
    "Report",
    "ReportError",
    "build_report",
    "distributions",
]


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
        write_atomically(path, json.dumps(self.to_json(), indent=2, default=str) + "\n")


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed over it, so a reader never
    sees half a file. :class:`ReportError` when ``path`` is a directory, device or FIFO: the
    rename would replace it (``/dev/null`` included, for root)."""
    if path.exists() and not path.is_file():
        raise ReportError(f"{path} is not a regular file: not written there")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def build_report(
    run_dir: Path,
    results_path: Path | None = None,
    *,
    spans_path: Path | None = None,
    prometheus: dict[str, Any] | None = None,
) -> Report:
    """The report of the run in ``run_dir`` (files named as in :class:`RunDirectory`).

    ``spans_path`` replaces ``RUN_DIR/spans.duckdb`` (a store fetched from Tempo);
    ``prometheus`` is what Prometheus recorded of the run, added to the report as is.
    Raises :class:`ReportError` when the results are missing or a file cannot be read."""
    with RunDirectory(run_dir, results_path=results_path, spans_path=spans_path) as run:
        return _build(run.require(), prometheus)


def _build(run: RunDirectory, prometheus: dict[str, Any] | None) -> Report:
    load = run.results()
    run_info = run.run_info()
    notes: list[str] = []
    stop_reason = load.get("stop_reason")
    if stop_reason:
        notes.append(
            f"The run stopped early: {stop_reason}. The figures cover the requests that "
            "finished; those in flight were cancelled."
        )
    stages = None
    diagnosis = None
    if not run.has_spans():
        notes.append("No span store in the run directory: no server stage breakdown.")
    elif not run.has_records():
        notes.append("No request records: no server stage breakdown.")
    else:
        stages = stage_breakdown(run)
        diagnosis = diagnose(run, list(load.get("levels", [])))
        notes.extend(diagnosis.notes)
        missing = stages.requests - stages.with_server_spans
        if missing:
            why = (
                f"the run stopped early: {stop_reason}"
                if stop_reason
                else "sampling, or a server without tracing"
            )
            notes.append(
                f"{missing} of {stages.requests} successful requests have no server span in "
                f"the store ({why})."
            )
    if run_info.get("simulated"):
        notes.append(
            "The backend is the `sim` simulator: these figures measure the tool, not an engine."
        )
    if load.get("client_bound"):
        notes.append(str(load.get("summary", "The client was the bottleneck.")))
    return Report(
        version=REPORT_VERSION,
        tool_version=__version__,
        created_unix_ns=time.time_ns(),
        run=run_info,
        load=load,
        resources=summarize_samples(run.metrics_path),
        stages=stages,
        distributions=distributions(run) if run.records_path.exists() else [],
        diagnosis=diagnosis,
        notes=notes,
        prometheus=prometheus,
    )


def distributions(run: RunDirectory) -> list[dict[str, Any]]:
    """Quantiles 0..100 of TTFT, TPOT and E2E (ms) per level, measured successes only.

    DuckDB's ``quantile_cont`` interpolates linearly, as numpy does by default.
    """
    quantiles = [round(q / 100, 2) for q in range(101)]
    rows = (
        run.database()
        .execute(
            f"""
            SELECT level,
                quantile_cont(ttft_s * 1e3, $q) FILTER (WHERE ttft_s IS NOT NULL),
                quantile_cont(tpot_s * 1e3, $q) FILTER (WHERE tpot_s IS NOT NULL),
                quantile_cont(e2e_s * 1e3, $q) FILTER (WHERE e2e_s IS NOT NULL)
            FROM {RECORDS_TABLE}
            WHERE measured AND ok
            GROUP BY level ORDER BY level
            """,
            {"q": quantiles},
        )
        .fetchall()
    )
    out = []
    for level, ttft, tpot, e2e in rows:
        entry: dict[str, Any] = {"level": int(level)}
        for key, values in (("ttft_ms", ttft), ("tpot_ms", tpot), ("e2e_ms", e2e)):
            if values:
                entry[key] = [round(v, 4) for v in values]
        out.append(entry)
    return out
