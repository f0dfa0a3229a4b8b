"""Analysis: the report of a run (stages joined by trace id, diagnosis, HTML), its sources
(the embedded span store, Prometheus, Tempo), critical paths and hotspots, load models, and
the SLO and regression gate."""

from open_autoglm.analysis._chart_data import ChartData
from open_autoglm.analysis._compare import FORMATS as COMPARE_FORMATS
from open_autoglm.analysis._compare import CompareRow, compare_rows
from open_autoglm.analysis._compare import render as render_comparison
from open_autoglm.analysis._critical_path import (
    CriticalPathError,
    CriticalPaths,
    critical_paths,
    trace_sections,
)
from open_autoglm.analysis._diagnosis import Diagnosis, diagnose
from open_autoglm.analysis._errors import AnalysisError
from open_autoglm.analysis._gate import GateResult, RegressionConfig, check_report
from open_autoglm.analysis._hardware import Hardware
from open_autoglm.analysis._hotspots import (
    HotspotConfig,
    HotspotReport,
    find_hotspots,
    latency_from_records,
    span_attributes,
)
from open_autoglm.analysis._html import render_html, write_html
from open_autoglm.analysis._level_summary import (
    LevelSummary,
    MetricSummary,
    PercentileError,
    parse_percentiles,
)
from open_autoglm.analysis._load_models import (
    FitSummary,
    LevelPoint,
    LoadModels,
    LoadModelsSummary,
    fit_load_models,
    points_from_levels,
)
from open_autoglm.analysis._metric_samples import ResourceSummary, summarize_samples
from open_autoglm.analysis._prometheus_source import (
    PrometheusConfig,
    PrometheusError,
    PrometheusSummary,
    prometheus_summary_of_run,
    query_prometheus,
)
from open_autoglm.analysis._report import (
    REPORT_VERSION,
    Distribution,
    Report,
    ReportOptions,
    RunInfo,
    build_report,
)
from open_autoglm.analysis._report_view import ReportReadError
from open_autoglm.analysis._run_directory import ReportError, RunDirectory
from open_autoglm.analysis._stages import StageBreakdown, stage_breakdown
from open_autoglm.analysis._tempo_source import (
    TempoConfig,
    TempoError,
    TempoFetch,
    fetch_run_traces,
    fetch_traces,
    search_trace_ids,
)

__all__ = [
    "COMPARE_FORMATS",
    "REPORT_VERSION",
    "AnalysisError",
    "ChartData",
    "CompareRow",
    "CriticalPathError",
    "CriticalPaths",
    "Diagnosis",
    "Distribution",
    "FitSummary",
    "GateResult",
    "Hardware",
    "HotspotConfig",
    "HotspotReport",
    "LevelPoint",
    "LevelSummary",
    "LoadModels",
    "LoadModelsSummary",
    "MetricSummary",
    "PercentileError",
    "PrometheusConfig",
    "PrometheusError",
    "PrometheusSummary",
    "RegressionConfig",
    "Report",
    "ReportError",
    "ReportOptions",
    "ReportReadError",
    "ResourceSummary",
    "RunDirectory",
    "RunInfo",
    "StageBreakdown",
    "TempoConfig",
    "TempoError",
    "TempoFetch",
    "build_report",
    "check_report",
    "compare_rows",
    "critical_paths",
    "diagnose",
    "fetch_run_traces",
    "fetch_traces",
    "find_hotspots",
    "fit_load_models",
    "latency_from_records",
    "parse_percentiles",
    "points_from_levels",
    "prometheus_summary_of_run",
    "query_prometheus",
    "render_comparison",
    "render_html",
    "search_trace_ids",
    "span_attributes",
    "stage_breakdown",
    "summarize_samples",
    "trace_sections",
    "write_html",
]
