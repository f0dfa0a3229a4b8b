"""``open-autoglm compare``: several runs side by side, one row per level."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from open_autoglm.commands._choices import COMPARE_FORMATS
from open_autoglm.commands._errors import UsageError


def register(subparsers: Any) -> None:
    compare: argparse.ArgumentParser = subparsers.add_parser(
        "compare",
        help="compare runs side by side: latency, tokens/s, peak memory, P95, error rate",
        description="The backend comparison table of several reports, one row per level.",
    )
    compare.add_argument("reports", type=Path, nargs="+", help="report.json files")
    compare.add_argument(
        "--format", choices=COMPARE_FORMATS, default="text", help="how the table is written"
    )
    compare.add_argument("--level", type=int, help="only this level (its index) of each report")
    compare.add_argument("--output", type=Path, help="write here instead of stdout")
    compare.set_defaults(run=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    from open_autoglm.analysis import compare_rows, render_comparison

    rows = compare_rows(args.reports, level=args.level)
    if not rows:
        raise UsageError("the reports have no levels to compare")
    text = render_comparison(rows, args.format, reports=args.reports)
    if args.output is not None:
        try:
            args.output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror}") from None
        print(f"comparison: {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
