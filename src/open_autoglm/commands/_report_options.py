"""The report's options on the command line (``analyze`` and a managed ``benchmark``):
which percentiles the results show, where trace ids link to, how many waterfalls are drawn."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from open_autoglm.commands._errors import UsageError

if TYPE_CHECKING:
    from open_autoglm.analysis import ReportOptions

DEFAULT_PERCENTILES = "50,90,95,99"
DEFAULT_WATERFALLS = 3


def add_report_arguments(group: argparse._ArgumentGroup | argparse.ArgumentParser) -> None:
    group.add_argument(
        "--metric-percentiles",
        default=DEFAULT_PERCENTILES,
        metavar="LIST",
        help="percentiles of TTFT, TPOT, ITL and E2E in the report, comma-separated, as "
        f"`vllm bench serve` takes them (default: {DEFAULT_PERCENTILES})",
    )
    group.add_argument(
        "--trace-url",
        metavar="TEMPLATE",
        help="link every trace id of the report to this address with {trace_id} replaced: "
        "Grafana Explore on Tempo, or e.g. 'http://127.0.0.1:16686/trace/{trace_id}' "
        "(default: in-page waterfalls only)",
    )
    group.add_argument(
        "--waterfalls",
        type=int,
        default=DEFAULT_WATERFALLS,
        metavar="N",
        help="waterfalls of the slowest requests drawn in report.html; the rest are listed "
        f"(default: {DEFAULT_WATERFALLS})",
    )


def report_options(args: argparse.Namespace) -> ReportOptions:
    """The :class:`ReportOptions` of the command line; a bad value is a :class:`UsageError`."""
    from open_autoglm.analysis import PercentileError, ReportError, ReportOptions, parse_percentiles

    try:
        return ReportOptions(
            percentiles=parse_percentiles(args.metric_percentiles),
            trace_url=args.trace_url,
            waterfalls=args.waterfalls,
        )
    except (PercentileError, ReportError) as exc:
        raise UsageError(f"{exc}") from None
