"""``open-autoglm dashboards generate [--out DIR] [--check]``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from open_autoglm.commands._dashboards_push import add_push_parser
from open_autoglm.commands._errors import UsageError

_DEFAULT_OUT = Path("dashboards")


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "dashboards",
        help="Grafana dashboards generated from code",
        description="Grafana dashboards, generated from Python into JSON files.",
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    generate = actions.add_parser(
        "generate",
        help="write the dashboard JSON files (or check that they are current)",
        description="Write the dashboards as Grafana JSON into a folder that Grafana provisions.",
    )
    generate.add_argument(
        "--out",
        type=Path,
        default=_DEFAULT_OUT,
        help="folder for the JSON files (default: dashboards/)",
    )
    generate.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a file is missing or differs from what the code generates",
    )
    generate.set_defaults(run=run_generate)
    add_push_parser(actions)


def run_generate(args: argparse.Namespace) -> int:
    try:
        from open_autoglm.dashboards import stale_dashboards, write_dashboards
    except ImportError as exc:  # the SDK is an optional extra
        raise UsageError(
            f"generating dashboards needs the grafana extra: pip install 'open-autoglm[grafana]' "
            f"({exc.name} is missing)"
        ) from exc
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is not a folder")
    if args.check:
        stale = stale_dashboards(out)
        if stale:
            print(
                f"dashboards out of date in {out}: {', '.join(stale)}; "
                f"run: open-autoglm dashboards generate --out {out}"
            )
            return 1
        print(f"dashboards in {out} are current")
        return 0
    for path in write_dashboards(out):
        print(path)
    return 0
