"""What ``benchmark`` tells its user: the summary of each level, the loud line when many
requests failed, the one line of a stopped run, and ``--output -`` (the JSON on stdout, the
human text on stderr)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from open_autoglm.loadgen import BenchmarkConfig, BenchmarkResults


#: Above this share of failed requests (failed / finished, all levels) a run says so in one
#: loud line on stderr. The exit status keeps its documented rule: 0 when any request
#: succeeded, 1 when none did, and with --fail-on-slo 1 when an objective is broken.
FAILURE_WARNING_SHARE: Final = 0.10


def write_stdout(document: dict[str, Any]) -> None:
    from open_autoglm import _strict_json as strict_json

    sys.stdout.write(strict_json.dumps(document, indent=2) + "\n")
    sys.stdout.flush()


def to_stdout(args: argparse.Namespace) -> bool:
    """``--output -``: the JSON goes to standard output, the human summary to stderr."""
    return args.output is not None and str(args.output) == "-"


def stopped(exc: KeyboardInterrupt, args: argparse.Namespace) -> int:
    """Print what a stopped run left (the partial results' summary, then one line on stderr)
    and return 128 + signal."""
    from open_autoglm.errors import Interrupted
    from open_autoglm.loadgen import BenchmarkInterrupted

    stopped = exc if isinstance(exc, Interrupted) else Interrupted(signal.SIGINT)
    line = f"open-autoglm: {stopped}"
    if isinstance(exc, BenchmarkInterrupted):
        results = exc.results
        print_summary(results, None, out=sys.stderr if to_stdout(args) else sys.stdout)
        if to_stdout(args):
            write_stdout(results.to_json())
        finished = sum(level.succeeded + level.failed for level in results.levels)
        cancelled = sum(level.cancelled for level in results.levels)
        line += f": {finished} requests finished, {cancelled} in flight cancelled"
        if args.backend is None and args.output is not None and not to_stdout(args):
            line += f"; partial results in {args.output}"
        elif args.run_dir is not None:
            what = "partial results and report" if args.backend else "partial results"
            line += f"; {what} in {args.run_dir}"
    else:  # stopped outside the load: before it, or (Ray) with no results to show
        records: Path | None = getattr(args, "records_file", None)
        if records is not None and records.is_file() and records.stat().st_size:
            line += f"; the records of the requests sent are in {records}"
        else:
            line += " before any request was sent"
    print(line, file=sys.stderr, flush=True)
    return stopped.exit_code


def warn_on_failures(results: BenchmarkResults) -> None:
    """One loud line on stderr when more than ``FAILURE_WARNING_SHARE`` of the finished
    requests failed (the exit status does not say so unless --fail-on-slo is given)."""
    failed = sum(level.failed for level in results.levels)
    finished = failed + sum(level.succeeded for level in results.levels)
    if not finished or failed / finished <= FAILURE_WARNING_SHARE:
        return
    errors: dict[str, int] = {}
    for level in results.levels:
        for kind, count in level.errors.items():
            errors[kind] = errors.get(kind, 0) + count
    ranked = sorted(errors.items(), key=lambda item: -item[1])[:3]
    top = ", ".join(f"{kind} {count}" for kind, count in ranked)
    rule = (
        "the run exits 1: no request succeeded"
        if failed == finished
        else "the exit status stays 0 as some succeeded; add --fail-on-slo --max-error-rate "
        "to fail such a run"
    )
    if set(errors) == {"ConnectError"}:  # nothing got through: say where it tried
        rule = f"could not connect to {results.endpoint.url}; " + rule
    print(
        f"open-autoglm: WARNING: {failed} of {finished} requests failed "
        f"({failed / finished:.0%}: {top}); {rule}",
        file=sys.stderr,
        flush=True,
    )


def print_summary(
    results: BenchmarkResults, config: BenchmarkConfig | None, out: Any = None
) -> None:
    """One paragraph a level on ``out`` (stdout), then where the files went (the results
    file is named when ``config`` is given)."""
    out = out or sys.stdout
    for level in results.levels:
        err = ", ".join(f"{k}: {v}" for k, v in level.errors.items()) or "none"
        ttft, tpot, e2e = level.ttft_ms, level.tpot_ms, level.e2e_ms
        print(
            f"level {level.index} {level.label}: {level.succeeded} ok, {level.failed} failed "
            f"(errors: {err}); {level.request_throughput:.2f} req/s, "
            f"{level.output_token_throughput:.1f} output tok/s",
            file=out,
        )
        if ttft.count:
            print(
                f"  TTFT p50 {ttft.median:.1f} ms p99 {ttft.p99:.1f} ms; "
                f"TPOT p50 {tpot.median or 0:.2f} ms; E2E p50 {e2e.median:.1f} ms"
                + (f"; goodput {level.goodput:.2f} req/s" if level.goodput is not None else ""),
                file=out,
            )
        print(f"  {level.health.statement}", file=out)
    print(results.summary, file=out)
    if config is not None and config.output_path is not None:
        print(f"results: {config.output_path}", file=out)
    if results.records_path:
        records = Path(results.records_path)
        if not records.is_absolute() and config is not None and config.output_path is not None:
            records = config.output_path.parent / records  # the results name it beside them
        print(f"records: {records}", file=out)
