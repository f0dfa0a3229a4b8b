"""``open-autoglm proxy``: a tracing proxy in front of any OpenAI-compatible server."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from open_autoglm.commands._errors import UsageError
from open_autoglm.commands._listen import listen_socket
from open_autoglm.commands._tracing_options import (
    add_export_stats_argument,
    add_tracing_arguments,
    event_loop_factory,
    sampling_config,
)


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "proxy",
        help="trace any OpenAI-compatible server from a proxy in front of it",
        description="Forward requests to --upstream unchanged (streams chunk by chunk, auth "
        "headers passed on and never recorded) and record per request a SERVER span that "
        "continues the caller's traceparent, upstream/first-output/streaming children, GenAI "
        "attributes and errors by type; /metrics serves the same histograms with trace_id "
        "exemplars as `open-autoglm serve`.",
    )
    p.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:8000")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8080, help="port (0: pick a free one)")
    add_tracing_arguments(p)
    add_export_stats_argument(p)
    p.add_argument("--no-tracing", action="store_true", help="metrics only, no spans")
    p.add_argument(
        "--read-timeout",
        type=float,
        default=300.0,
        metavar="S",
        help="longest silence of the upstream before a request fails as a stall, in seconds",
    )
    p.add_argument(
        "--ready-file",
        type=Path,
        help="write {url, port, pid} as JSON here once the proxy accepts requests",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from open_autoglm.attach import ProxyConfig, ProxyConfigError, serve_proxy
    from open_autoglm.telemetry import TelemetryConfigError, TracingConfig, make_tracing
    from open_autoglm.telemetry import names as n

    try:
        config = ProxyConfig(upstream=args.upstream, read_timeout_s=args.read_timeout)
        sampling = sampling_config(args)
    except (ProxyConfigError, TelemetryConfigError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    sock = listen_socket(args.host, args.port)  # a busy port: one line, exit 2
    try:
        tracing = None
        if not args.no_tracing:
            tracing = make_tracing(
                TracingConfig.from_env(
                    n.PROXY_SERVICE_NAME, endpoint=args.otlp_endpoint, protocol=args.otlp_protocol
                ),
                sampling=sampling,
            )
    except (TelemetryConfigError, ValueError) as exc:
        sock.close()
        raise UsageError(str(exc)) from exc
    except BaseException:
        sock.close()
        raise

    def announce(url: str) -> None:
        print(f"open-autoglm proxy: proxying {config.base} on {url}", file=sys.stderr, flush=True)

    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            return runner.run(
                serve_proxy(
                    config, tracing, args.host, args.port, args.ready_file, args.export_stats,
                    sock, announce,
                )
            )  # fmt: skip
    finally:
        sock.close()
        if args.ready_file is not None:
            args.ready_file.unlink(missing_ok=True)
