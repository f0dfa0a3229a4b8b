"""``open-autoglm serve``: the instrumented OpenAI-compatible server.

The server's libraries (fastapi, uvicorn, the backends) are imported in :func:`run`.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from open_autoglm.commands._backend_options import parse_backend_options
from open_autoglm.commands._choices import (
    BACKENDS,
    SERVER_BODY_TIMEOUT_S,
    SERVER_HEADER_TIMEOUT_S,
    SERVER_MAX_BODY_BYTES,
)
from open_autoglm.commands._errors import UsageError
from open_autoglm.commands._listen import listen_socket
from open_autoglm.commands._paths import output_file
from open_autoglm.commands._tracing_options import (
    add_export_stats_argument,
    add_tracing_arguments,
    event_loop_factory,
    sampling_config,
)

if TYPE_CHECKING:
    from open_autoglm.instrumented_servers import ServerConfig
    from open_autoglm.telemetry import SamplingConfig, TracingConfig


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="serve a backend behind an instrumented OpenAI-compatible API",
        description="Serve a backend behind an OpenAI-compatible API that emits OpenTelemetry "
        "spans per stage (tokenize, queue, prefill, decode) and Prometheus metrics with "
        "trace_id exemplars.",
    )
    p.add_argument("--backend", default="sim", help=f"one of {', '.join(BACKENDS)}")
    p.add_argument("--model", help="model name or path (backend-specific; sim: any name)")
    p.add_argument("--served-model-name", help="model name clients send (default: --model)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8000, help="port (0: pick a free one)")
    p.add_argument("--max-model-len", type=int, help="context length limit in tokens")
    p.add_argument("--max-batch-size", type=int, help="most sequences in one running batch")
    p.add_argument("--max-queue", type=int, help="most waiting requests before 429")
    p.add_argument(
        "--target-tpot",
        type=float,
        metavar="MS",
        help="adaptive batching: adjust the batch cap (up to --max-batch-size) from measured "
        "step latency to keep time per output token at or under MS milliseconds "
        "(sim, onnxruntime, tensorrt; off by default)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (engine backends)")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the backend's randomness (default: %(default)s)",
    )
    p.add_argument(
        "--backend-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="backend-specific setting, repeatable (sim: cost=zero, decode_base_ms=5, ...)",
    )
    add_tracing_arguments(p)
    add_export_stats_argument(p)
    p.add_argument(
        "--no-tracing",
        action="store_true",
        help="make no spans at all (metrics stay; exemplars go): the overhead baseline",
    )
    p.add_argument(
        "--max-body-bytes", type=int, default=SERVER_MAX_BODY_BYTES,
        help="largest request body accepted (413 above)",
    )  # fmt: skip
    p.add_argument(
        "--header-timeout",
        type=float,
        default=SERVER_HEADER_TIMEOUT_S,
        metavar="S",
        help="most seconds to receive a request's headers, then 408 and close "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--body-timeout",
        type=float,
        default=SERVER_BODY_TIMEOUT_S,
        metavar="S",
        help="most seconds between two pieces of a request body (one shorter than its "
        "Content-Length), then 408 and close (default: %(default)s)",
    )
    p.add_argument(
        "--ready-file",
        type=Path,
        help="write {url, port, pid} as JSON here once the server accepts requests",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from open_autoglm.instrumented_servers import (
        BackendOptions,
        ServerConfig,
        UnknownBackendError,
        build_backend,
    )
    from open_autoglm.telemetry import TelemetryConfigError, TracingConfig
    from open_autoglm.telemetry import names as n

    extra = parse_backend_options(args.backend_option)
    if args.ready_file is not None:
        output_file(args.ready_file, "--ready-file")
    try:
        config = ServerConfig(
            host=args.host,
            port=args.port,
            max_body_bytes=args.max_body_bytes,
            header_timeout_s=args.header_timeout,
            body_timeout_s=args.body_timeout,
        )
        tracing = TracingConfig.from_env(
            n.SERVER_SERVICE_NAME, endpoint=args.otlp_endpoint, protocol=args.otlp_protocol
        )
        sampling = sampling_config(args)
    except (ValueError, TelemetryConfigError) as exc:
        raise UsageError(str(exc)) from exc
    # bound before the backend loads: a busy port is one line at once, not after the model
    sock = listen_socket(config.host, config.port)
    try:
        backend = build_backend(
            BackendOptions(
                name=args.backend,
                model=args.model,
                served_model_name=args.served_model_name,
                max_model_len=args.max_model_len,
                max_batch_size=args.max_batch_size,
                max_queue=args.max_queue,
                device=args.device,
                seed=args.seed,
                target_tpot_ms=args.target_tpot,
                extra=extra,
            )
        )
    except (ValueError, UnknownBackendError) as exc:
        sock.close()
        raise UsageError(str(exc)) from exc
    except BaseException:
        sock.close()
        raise
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            return runner.run(
                _serve(
                    config, None if args.no_tracing else tracing, sampling, backend,
                    args.ready_file, args.export_stats, sock,
                )
            )  # fmt: skip
    finally:
        sock.close()
        if args.ready_file is not None:
            args.ready_file.unlink(missing_ok=True)


async def _serve(
    config: ServerConfig,
    tracing_config: TracingConfig | None,
    sampling: SamplingConfig,
    backend: Any,
    ready: Path | None,
    export_stats: Path | None = None,
    sock: socket.socket | None = None,
) -> int:
    """Serve until stopped on ``sock`` (bound and listening), or on the config's host and port."""
    import uvicorn

    from open_autoglm.instrumented_servers import create_app, timed_http_protocol
    from open_autoglm.telemetry import GpuProbe, make_tracing, serve_app
    from open_autoglm.telemetry import names as n

    tracing = (
        None
        if tracing_config is None
        else make_tracing(
            tracing_config,
            resource_attributes=n.runtime_resource_attributes(backend.name, backend.runtime()),
            sampling=sampling,
        )
    )

    def started(url: str) -> None:
        # a normal start is no warning, yet a user must see where to send requests: stderr
        print(f"open-autoglm serve: serving on {url}", file=sys.stderr, flush=True)

    app = create_app(backend, tracing=tracing, config=config, gpu=GpuProbe())
    return await serve_app(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            http=timed_http_protocol(config.header_timeout_s, config.body_timeout_s),
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
        ),
        tracing=tracing,
        announce=started,
        ready_file=ready,
        export_stats=export_stats,
        sock=sock,
    )
