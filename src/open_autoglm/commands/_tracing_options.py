"""Flags shared by the commands that serve traced requests (``serve``, ``proxy``): the OTLP
destination, tail sampling, and the event loop they run on."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from open_autoglm.telemetry import SamplingConfig


def add_tracing_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--otlp-endpoint", help="OTLP collector address (default: OTEL_* variables)")
    p.add_argument(
        "--otlp-protocol", choices=["http/protobuf", "http/json", "grpc"], help="OTLP protocol"
    )
    p.add_argument(
        "--trace-budget",
        type=float,
        metavar="SPANS_PER_S",
        help="tail sampling: keep every failed and every slow request, and of the rest a share "
        "that keeps exported spans under SPANS_PER_S; the share kept is on each SERVER span "
        "(autoglm.sampling.ratio). Default: keep every request (benchmark runs)",
    )
    p.add_argument(
        "--trace-slow-ms",
        type=float,
        metavar="MS",
        help="with --trace-budget: a request this slow is always kept (default: the running "
        "p95 of request durations)",
    )


def add_export_stats_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--export-stats",
        type=Path,
        metavar="FILE",
        help="on exit, write span export counts (exported, dropped, sampled out) here as JSON",
    )


def sampling_config(args: argparse.Namespace) -> SamplingConfig:
    """The sampling settings of ``args`` (a bad value raises ``ValueError``)."""
    from open_autoglm.telemetry import SamplingConfig

    slow = None if args.trace_slow_ms is None else args.trace_slow_ms / 1000
    if args.trace_slow_ms is not None and args.trace_budget is None:
        raise ValueError("--trace-slow-ms needs --trace-budget (without it every request is kept)")
    return SamplingConfig(budget_spans_per_s=args.trace_budget, slow_s=slow)


def event_loop_factory() -> Callable[[], Any] | None:
    """uvloop's event loop where it is installed (not on Windows), else asyncio's default: a
    server's hot path is socket reads and writes, which uvloop makes several times cheaper."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
