"""The report: a versioned, typed JSON document built from a run directory.

A run directory (:class:`~open_autoglm.analysis._run_directory.RunDirectory`) holds what a
benchmark left behind: ``results.json``, ``requests.jsonl``, ``spans.duckdb`` (when a
collector ran), ``server_metrics.jsonl`` and ``run.json``. :func:`build_report` reads each
once and never needs the servers to be alive.

The report is typed to its leaves: the load generator's :class:`BenchmarkResults`, the
:class:`RunInfo` of ``run.json``, the :class:`ResourceSummary`, the stage breakdown, the
diagnosis and the :class:`PrometheusSummary`. :meth:`Report.to_json` is the versioned document
(``open-autoglm.report/1``) and :meth:`Report.from_json` reads one back, validated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import pydantic

from open_autoglm import __version__
from open_autoglm import _strict_json as strict_json
from open_autoglm._redact import redact_url
from open_autoglm.analysis._chart_data import ChartData, chart_data
from open_autoglm.analysis._derived_stages import derive_stages_in_store
from open_autoglm.analysis._diagnosis import Diagnosis, diagnose
from open_autoglm.analysis._hardware import Hardware
from open_autoglm.analysis._level_summary import (
    DEFAULT_PERCENTILES,
    LevelSummary,
    summarize_levels,
)
from open_autoglm.analysis._metric_samples import (
    ResourceSummary,
    measured_windows,
    summarize_samples,
)
from open_autoglm.analysis._prometheus_source import PrometheusSummary
from open_autoglm.analysis._run_directory import RECORDS_TABLE, ReportError, RunDirectory
from open_autoglm.analysis._stages import StageBreakdown, stage_breakdown
from open_autoglm.loadgen import BenchmarkResults, ConfigError
from open_autoglm.telemetry import names as n

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

DistributionMetric = Literal["ttft_ms", "tpot_ms", "e2e_ms"]
ReportVersion = Literal["open-autoglm.report/1"]
REPORT_VERSION: Final[ReportVersion] = "open-autoglm.report/1"


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What was run (``run.json``, written by the managed run; absent for an external
    server). Every field may be missing from an older file."""

    mode: str | None = None  # "managed", or "attached" (a server we did not start)
    backend: str | None = None
    model: str | None = None
    simulated: bool = False
    #: where the engine ran, as the server's /health says (``device``, ``execution_provider``,
    #: ``kv_cache``, ...)
    runtime: dict[str, str] = field(default_factory=dict)
    server_args: list[str] = field(default_factory=list)
    url: str | None = None
    hardware: Hardware | None = None
    started_unix_ns: int | None = None
    #: an attached run (``benchmark --url --collect-spans``/``--server-metrics``): whether the
    #: server's spans were collected, and the metrics page sampled
    collect_spans: bool = False
    server_metrics_url: str | None = None
    #: the benchmarked URL is an ``open-autoglm proxy`` (its /metrics names its upstream)
    via_proxy: bool = False
    #: the run directory, absolute: where ``check`` finds the records of a report written
    #: elsewhere (``benchmark --backend X --output OTHER/report.json``)
    run_dir: str | None = None

    @property
    def measured_process(self) -> str:
        """Whose process the resource samples describe: ``"proxy"`` when the only metrics
        page was an ``open-autoglm proxy``'s (its memory and in-flight, not the server's),
        else ``"server"``."""
        return "proxy" if self.backend == n.BACKEND_PROXY else "server"

    def write(self, path: Path) -> None:
        """``run.json``: every field, in this order."""
        text = strict_json.dumps(asdict(self), indent=2)
        path.write_text(text + "\n", encoding="utf-8")


@dataclass(frozen=True, slots=True)
class Distribution:
    """One level's 101 quantiles (0..100) of TTFT, TPOT and E2E in ms (None: no value); the
    CDFs of the HTML. In JSON a metric without values is left out."""

    level: int
    ttft_ms: list[float] | None = None
    tpot_ms: list[float] | None = None
    e2e_ms: list[float] | None = None

    def metric(self, key: DistributionMetric) -> list[float] | None:
        value: list[float] | None = getattr(self, key)
        return value

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


#: The placeholder a trace URL template must hold.
TRACE_ID_FIELD: Final = "{trace_id}"


@dataclass(frozen=True, slots=True)
class ReportOptions:
    """How the report is built and shown, set once by the command line.

    ``percentiles``: of the results summary (``--metric-percentiles``), each in (0, 100];
    ``trace_url``: a template with ``{trace_id}`` (e.g. Grafana Explore on Tempo) that every
    trace id links to, besides its in-page waterfall; ``waterfalls``: how many of the slowest
    requests' waterfalls the page draws (the rest are listed). Raises :class:`ReportError`
    for a bad value."""

    percentiles: tuple[float, ...] = DEFAULT_PERCENTILES
    trace_url: str | None = None
    waterfalls: int = 3

    def __post_init__(self) -> None:
        if not self.percentiles or not all(0 < q <= 100 for q in self.percentiles):
            raise ReportError(f"percentiles must be in (0, 100], got {self.percentiles}")
        url = self.trace_url
        if url is not None and (
            TRACE_ID_FIELD not in url or not url.startswith(("http://", "https://"))
        ):
            raise ReportError(
                f"a trace URL is an http(s) address holding {TRACE_ID_FIELD}, got {url!r}"
            )
        if self.waterfalls < 0:
            raise ReportError(f"waterfalls must be 0 or more, got {self.waterfalls}")


@dataclass(frozen=True, slots=True)
class Report:
    version: ReportVersion
    tool_version: str
    created_unix_ns: int
    #: backend, model, simulated, hardware, server args, url (None: no ``run.json``, ``{}``
    #: in JSON)
    run: RunInfo | None
    load: BenchmarkResults  # the load generator's results document, levels included
    resources: ResourceSummary
    stages: StageBreakdown | None
    #: per level, 101 quantiles (0..100) of TTFT, TPOT and E2E in ms: the CDFs of the HTML
    distributions: list[Distribution] = field(default_factory=list)
    #: hotspots of the slow requests, load models over the levels (None without spans)
    diagnosis: Diagnosis | None = None
    notes: list[str] = field(default_factory=list)
    #: the server's side from Prometheus (``analyze --prometheus``)
    prometheus: PrometheusSummary | None = None
    #: the percentiles of ``summary`` (``--metric-percentiles``)
    percentiles: list[float] = field(default_factory=lambda: list(DEFAULT_PERCENTILES))
    #: per level: requests, errors, throughput, TTFT/TPOT/ITL/E2E mean and percentiles
    summary: list[LevelSummary] = field(default_factory=list)
    #: time series, ITL by position and distribution, TTFT by input, length distributions
    charts: ChartData | None = None
    #: the template trace ids link to (``{trace_id}``), None: in-page links only
    trace_url: str | None = None
    #: waterfalls of the slowest requests drawn in the HTML
    waterfalls: int = 3

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["run"] = out["run"] or {}
        out["distributions"] = [d.to_json() for d in self.distributions]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Report:
        """A report document back as a :class:`Report`; :class:`ReportError` names the first
        field that is missing or of the wrong type."""
        doc = dict(data)
        if doc.get("run") == {}:
            doc["run"] = None
        try:
            return _REPORT.validate_python(doc)
        except (pydantic.ValidationError, ConfigError) as exc:
            raise ReportError(f"not an {REPORT_VERSION} report: {_first_error(exc)}") from None

    def write(self, path: Path) -> None:
        write_atomically(path, strict_json.dumps(self.to_json(), indent=2, default=str) + "\n")


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


_REPORT: Final = pydantic.TypeAdapter(Report)
_RESULTS: Final = pydantic.TypeAdapter(BenchmarkResults)
_RUN: Final = pydantic.TypeAdapter(RunInfo)


def _first_error(exc: pydantic.ValidationError | ConfigError) -> str:
    """The first field in error and why (a config rejected as built: its message)."""
    if isinstance(exc, ConfigError):
        return str(exc)
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "document"
    return f"{where}: {error['msg']} ({exc.error_count()} error(s))"


def _validated(adapter: pydantic.TypeAdapter[_T], data: dict[str, Any], path: Path) -> _T:
    try:
        return adapter.validate_python(data)
    except (pydantic.ValidationError, ConfigError) as exc:
        raise ReportError(f"{path} is not what a report needs: {_first_error(exc)}") from None


def _redact_endpoint(load: dict[str, Any]) -> None:
    """A results file written before URLs were stripped of credentials may hold a password:
    the report never copies it."""
    endpoint = load.get("endpoint")
    if isinstance(endpoint, dict) and isinstance(endpoint.get("url"), str):
        endpoint["url"] = redact_url(endpoint["url"])


def build_report(
    run_dir: Path,
    results_path: Path | None = None,
    *,
    spans_path: Path | None = None,
    prometheus: PrometheusSummary | None = None,
    options: ReportOptions | None = None,
) -> Report:
    """The report of the run in ``run_dir`` (files named as in :class:`RunDirectory`).

    ``spans_path`` replaces ``RUN_DIR/spans.duckdb`` (a store fetched from Tempo);
    ``prometheus`` is what Prometheus recorded of the run, added to the report as is;
    ``options`` the percentiles, trace links and waterfalls (:class:`ReportOptions`).
    Raises :class:`ReportError` when the results are missing or a file cannot be read."""
    with RunDirectory(run_dir, results_path=results_path, spans_path=spans_path) as run:
        run.require()
        # before the store is opened read-only for the report: the derivation writes to it
        notes = _derive_vllm_stages(run.spans_path) if run.has_spans() else []
        return _build(run, prometheus, options or ReportOptions(), notes)


def _derive_vllm_stages(spans: Path) -> list[str]:
    """Draw stages from vLLM's own ``llm_request`` spans in the store (once); say so."""
    import duckdb

    from open_autoglm.collector import CollectorError

    try:
        summary = derive_stages_in_store(spans)
    except (CollectorError, duckdb.Error) as exc:
        return [f"Stages could not be drawn from vLLM's llm_request spans: {exc}"]
    with_stages = summary.derived + summary.already_derived
    if not with_stages:
        return []
    note = (
        f"Queue, prefill and decode of {with_stages} requests are drawn from vLLM's own "
        "llm_request spans (autoglm.derived_from); vLLM does not time its tokenization apart."
    )
    if summary.incomplete:
        note += f" {summary.incomplete} of its spans lack a stage boundary (aborted requests)."
    return [note]


def _build(
    run: RunDirectory,
    prometheus: PrometheusSummary | None,
    options: ReportOptions,
    notes: list[str],
) -> Report:
    load_doc = run.results()
    _redact_endpoint(load_doc)
    load = _validated(_RESULTS, load_doc, run.results_path)
    run_doc = run.run_info()
    run_info = _validated(_RUN, run_doc, run.run_path) if run_doc else None
    stop_reason = load.stop_reason
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
        diagnosis = diagnose(run, load_doc.get("levels", []))
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
    export = run.export_stats()
    dropped = int(export.get("spans_dropped", 0))
    if dropped:
        total = dropped + int(export.get("spans_exported", 0))
        notes.append(
            f"The server dropped {dropped} of {total} spans on export (queue limit, or a "
            "collector that never took them): their requests cannot be joined."
        )
    if run_info is not None and run_info.simulated:
        notes.append(
            "The backend is the `sim` simulator: these figures measure the tool, not an engine."
        )
    if load.client_bound:
        notes.append(load.summary)
    records = run.has_records()
    labels = {lv.index: lv.label for lv in load.levels}
    return Report(
        version=REPORT_VERSION,
        tool_version=__version__,
        created_unix_ns=time.time_ns(),
        run=run_info,
        load=load,
        resources=summarize_samples(
            run.metrics_path, run.memory_path, measured_windows(run.records_path)
        ),
        stages=stages,
        distributions=distributions(run) if run.records_path.exists() else [],
        diagnosis=diagnosis,
        notes=notes,
        prometheus=prometheus,
        percentiles=list(options.percentiles),
        summary=summarize_levels(load.levels, run if records else None, options.percentiles),
        charts=chart_data(run, labels) if records else None,
        trace_url=options.trace_url,
        waterfalls=options.waterfalls,
    )


def distributions(run: RunDirectory) -> list[Distribution]:
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

    def ms(values: list[float] | None) -> list[float] | None:
        return [round(v, 4) for v in values] if values else None

    return [
        Distribution(int(level), ttft_ms=ms(ttft), tpot_ms=ms(tpot), e2e_ms=ms(e2e))
        for level, ttft, tpot, e2e in rows
    ]
