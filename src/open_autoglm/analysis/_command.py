"""``open-autoglm analyze RUN_DIR``: rebuild ``report.json`` and ``report.html`` of a run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from open_autoglm._errors import UsageError
from open_autoglm.analysis._html import write_html
from open_autoglm.analysis._report import ReportError, build_report


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "analyze",
        help="rebuild the report of a run directory from its records and spans",
        description="Read a run directory (results.json, requests.jsonl, spans.duckdb, "
        "server_metrics.jsonl) and write report.json and report.html.",
    )
    p.add_argument("run_dir", type=Path, help="the run directory")
    p.add_argument("--output", type=Path, help="report path (default: RUN_DIR/report.json)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    output: Path = args.output or args.run_dir / "report.json"
    try:
        report = build_report(args.run_dir)
    except ReportError as exc:
        raise UsageError(str(exc)) from exc
    report.write(output)
    write_html(report, output.with_suffix(".html"))
    stages = report.stages
    print(f"report: {output}")
    print(f"html:   {output.with_suffix('.html')}")
    if stages is not None:
        print(f"{stages.with_server_spans}/{stages.requests} requests joined to server spans")
    return 0
