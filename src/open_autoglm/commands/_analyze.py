"""``open-autoglm analyze RUN_DIR``: rebuild ``report.json`` and ``report.html`` of a run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from open_autoglm.commands._errors import UsageError
from open_autoglm.commands._report_options import add_report_arguments, report_options

if TYPE_CHECKING:
    from open_autoglm.analysis import PrometheusSummary


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "analyze",
        help="rebuild the report of a run directory from its records and spans",
        description="Read a run directory (results.json, requests.jsonl, spans.duckdb, "
        "server_metrics.jsonl) and write report.json and report.html.",
    )
    p.add_argument("run_dir", type=Path, help="the run directory")
    p.add_argument(
        "--output",
        type=Path,
        help="report path (default: RUN_DIR/report.json); '-' writes the report JSON to "
        "standard output (report.html still goes to RUN_DIR)",
    )
    p.add_argument(
        "--prometheus",
        metavar="URL",
        help="add the server's percentiles, resources and exemplars from this Prometheus "
        "(PromQL over HTTP, the run's window and model)",
    )
    p.add_argument(
        "--tempo",
        metavar="URL",
        help="read the run's traces from this Tempo (by trace id, else a TraceQL search) "
        "into RUN_DIR/tempo_spans.duckdb instead of using RUN_DIR/spans.duckdb",
    )
    add_report_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from open_autoglm.analysis import (
        PrometheusError,
        ReportError,
        TempoError,
        build_report,
        write_html,
    )

    to_stdout = args.output is not None and str(args.output) == "-"
    human = sys.stderr if to_stdout else sys.stdout
    output: Path = args.run_dir / "report.json" if to_stdout or not args.output else args.output
    options = report_options(args)
    try:
        spans_path, prometheus = _sources(args, human)
        report = build_report(
            args.run_dir, spans_path=spans_path, prometheus=prometheus, options=options
        )
    except (ReportError, PrometheusError, TempoError) as exc:
        raise UsageError(str(exc)) from exc
    if to_stdout:
        from open_autoglm import _strict_json as strict_json

        sys.stdout.write(strict_json.dumps(report.to_json(), indent=2, default=str) + "\n")
    else:
        report.write(output)
        print(f"report: {output}", file=human)
    write_html(report, output.with_suffix(".html"))
    stages = report.stages
    print(f"html:   {output.with_suffix('.html')}", file=human)
    if stages is not None:
        print(
            f"{stages.with_server_spans}/{stages.requests} requests joined to server spans",
            file=human,
        )
    return 0


def _sources(args: argparse.Namespace, human: Any) -> tuple[Path | None, PrometheusSummary | None]:
    """Spans from Tempo and the Prometheus summary, when asked for (printed as fetched)."""
    from open_autoglm.analysis import TempoConfig, fetch_run_traces, prometheus_summary_of_run

    spans_path: Path | None = None
    prometheus: PrometheusSummary | None = None
    if args.tempo and args.run_dir.is_dir():
        fetched = fetch_run_traces(
            args.run_dir, TempoConfig(url=args.tempo), args.run_dir / "tempo_spans.duckdb"
        )
        print(f"tempo:  {fetched.summary()}", file=human)
        spans_path = fetched.path
    if args.prometheus and args.run_dir.is_dir():
        summary = prometheus_summary_of_run(args.run_dir, args.prometheus)
        print(f"prometheus: {summary.e2e.count or 0:.0f} requests in the run's window", file=human)
        prometheus = summary
    return spans_path, prometheus
