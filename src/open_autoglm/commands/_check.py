"""``open-autoglm check``: the release gate (objectives, and regressions against a baseline)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from open_autoglm.commands._errors import UsageError
from open_autoglm.commands._paths import input_file


def register(subparsers: Any) -> None:
    check = subparsers.add_parser(
        "check",
        help="gate a release: objectives and regressions against a baseline (exit 0 pass, "
        "1 fail, 2 cannot judge)",
        description=(
            "Check a report against objectives, and against a baseline report for regressions "
            "beyond run-to-run noise (bootstrap of the per-request samples in the "
            "requests.jsonl beside each report). Exits 0 when every check passes, 1 when one "
            "fails, 2 on a usage error or when it cannot judge, with the reason (no measured "
            "request, records that are not the run's own, a check that could not be measured "
            "and none that failed): it never passes or fails what it did not see."
        ),
    )
    check.add_argument("report", type=Path, help="report.json (or a load generator results JSON)")
    check.add_argument("--baseline", type=Path, help="an earlier report to compare against")
    check.add_argument(
        "--slo", help="objectives, e.g. 'p95_e2e<=200ms,p99_ttft<=1s,rps>=20,error_rate<=1%%'"
    )
    check.add_argument("--max-error-rate", help="highest error rate allowed, e.g. 0.5%% or 0.005")
    check.add_argument("--level", type=int, help="check one level (its index) instead of all")
    check.add_argument(
        "--min-change",
        type=float,
        default=0.05,
        help="relative change that counts as a regression when beyond noise (default 0.05)",
    )
    check.add_argument(
        "--format", choices=("text", "markdown", "json"), default="text",
        help="how the verdict is printed",
    )  # fmt: skip
    check.set_defaults(run=run_check)


def run_check(args: argparse.Namespace) -> int:
    from open_autoglm.analysis import RegressionConfig, check_report
    from open_autoglm.objectives import parse_error_rate, parse_gate

    input_file(args.report, "report")
    if args.baseline is not None:
        input_file(args.baseline, "--baseline")
    objectives = list(parse_gate(args.slo)) if args.slo is not None else []
    if args.max_error_rate is not None:
        if any(o.metric == "error_rate" for o in objectives):
            raise UsageError("give the error rate once: in --slo or --max-error-rate")
        objectives.append(parse_error_rate(args.max_error_rate))
    if not objectives and args.baseline is None:
        raise UsageError("nothing to check: give --slo, --max-error-rate or --baseline")
    if not 0 <= args.min_change < 10:
        raise UsageError(f"--min-change must be a fraction such as 0.05, got {args.min_change}")
    result = check_report(
        args.report,
        objectives,
        baseline=args.baseline,
        level=args.level,
        regression=RegressionConfig(min_change=args.min_change),
    )
    if args.format == "json":
        from open_autoglm import _strict_json as strict_json

        print(strict_json.dumps(result.to_json(), indent=2))
    else:
        print(result.table(markdown=args.format == "markdown"))
    return result.exit_code
