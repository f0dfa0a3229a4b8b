"""``open-autoglm collector``: the embedded OTLP collector as a command.

The collector (aiohttp, grpc, duckdb) is imported in :func:`run`.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from open_autoglm.commands._choices import COLLECTOR_MAX_BODY_BYTES
from open_autoglm.commands._errors import UsageError

logger = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "collector",
        help="receive OTLP traces (HTTP and gRPC) into a DuckDB span store",
        description=(
            "Receive OTLP traces over HTTP (protobuf or JSON, POST /v1/traces) and gRPC, and "
            "store the spans in a DuckDB file. Runs until SIGTERM or Ctrl-C, then stores every "
            "accepted span and exits."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--http-port", type=_port, default=4318, help="OTLP/HTTP port; 0 picks one, off disables"
    )
    parser.add_argument(
        "--grpc-port", type=_port, default=4317, help="OTLP/gRPC port; 0 picks one, off disables"
    )
    parser.add_argument(
        "--db", type=Path, default=Path("spans.duckdb"), help="span store file (DuckDB)"
    )
    parser.add_argument(
        "--ready-file",
        type=Path,
        help="write the bound ports and endpoints here as JSON once ready",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=COLLECTOR_MAX_BODY_BYTES,
        help="largest request body, after decompression (default: %(default)s)",
    )
    parser.add_argument(
        "--flush-interval",
        type=float,
        default=0.5,
        help="seconds a span may wait before it is written (default: %(default)s)",
    )
    parser.set_defaults(run=run)


def _port(text: str) -> int | None:
    if text == "off":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: a number or 'off'") from None


def run(args: argparse.Namespace) -> int:
    from open_autoglm.collector import (
        Collector,
        CollectorConfig,
        CollectorError,
        write_ready_file,
    )

    try:
        config = CollectorConfig(
            db_path=args.db,
            host=args.host,
            http_port=args.http_port,
            grpc_port=args.grpc_port,
            max_body_bytes=args.max_body_bytes,
            flush_interval_s=args.flush_interval,
        )
    except CollectorError as exc:
        raise UsageError(str(exc)) from exc
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("signal %d: stopping the collector", signum)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        collector = Collector(config)
        try:
            collector.start()
        except CollectorError as exc:
            raise UsageError(str(exc)) from exc
        try:
            info = collector.ready_info()
            if args.ready_file is not None:
                write_ready_file(args.ready_file, info)
            print(json.dumps(info), flush=True)  # after the file: either one means ready
            stop.wait()
        finally:
            stats = collector.stop()
        logger.info("collector session: %s", stats)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
