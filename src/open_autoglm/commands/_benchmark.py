"""``open-autoglm benchmark --url URL``: drive an existing OpenAI-compatible server.

With ``--collect-spans`` or ``--server-metrics`` it is an attached run
(:func:`open_autoglm.run.run_attached`): the server's spans (through the embedded collector)
and its Prometheus metrics join the client's records in a run directory with a report.
Thin: builds the frozen config objects from the command line (every user mistake raises
here, before anything is sent), calls :func:`open_autoglm.loadgen.run_benchmark`, prints a
summary. Without ``--url``, ``--backend X`` makes it a managed run
(:func:`open_autoglm.run.run_managed`: server and collector started for the run).
The libraries are imported in :func:`run`, so ``--help`` imports none of them.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from open_autoglm.commands._backend_options import parse_backend_options
from open_autoglm.commands._benchmark_output import (
    print_summary,
    stopped,
    to_stdout,
    warn_on_failures,
    write_stdout,
)
from open_autoglm.commands._choices import (
    APIS,
    ARRIVALS,
    BACKENDS,
    DATASETS,
    DISTRIBUTIONS,
    IMAGE_FORMATS,
    PROFILES,
)
from open_autoglm.commands._errors import UsageError
from open_autoglm.commands._report_options import add_report_arguments, report_options
from open_autoglm.commands._run_files import RunFiles, check_inputs, plan_run_files

if TYPE_CHECKING:
    from open_autoglm.loadgen import (
        BenchmarkConfig,
        ProfileKind,
        ProgressReporter,
        Prompt,
    )
    from open_autoglm.run import AttachedTarget, ManagedServer
from open_autoglm.objectives import parse_error_rate, split_objectives


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "benchmark",
        help="drive an OpenAI-compatible server with load and record every request",
        description=(
            "Send a streaming load to an OpenAI-compatible server and record TTFT, TPOT, ITL "
            "and E2E per request (requests.jsonl) and per level (results JSON)."
        ),
        epilog=(
            "Exit status: 0 when any request succeeded, 1 when none did (or, with "
            "--fail-on-slo, an objective is broken), 2 on a usage error or a child of a managed "
            "run that died mid-run, 128+N when stopped by signal N (SIGINT 130, SIGTERM 143, "
            "SIGHUP 129: what finished is written first). Above 10% failed requests one "
            "WARNING line says so whatever the status."
        ),
    )
    add_arguments(parser)
    parser.set_defaults(run=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    target = parser.add_argument_group("target")
    target.add_argument("--url", help="server base URL, e.g. http://127.0.0.1:8000")
    attached = parser.add_argument_group(
        "attached run (--url): the server's side of a server we did not start, into a run "
        "directory with a report"
    )
    attached.add_argument(
        "--collect-spans",
        action="store_true",
        help="run the embedded collector for this run and join the server's spans to the "
        "client's by trace id; prints what to give the server (vLLM: --otlp-traces-endpoint)",
    )
    attached.add_argument(
        "--collector-grpc-port", type=int, default=4317, metavar="PORT",
        help="the collector's OTLP/gRPC port (default 4317, vLLM's exporter; 0: any free one)",
    )  # fmt: skip
    attached.add_argument(
        "--collector-http-port", type=int, default=4318, metavar="PORT",
        help="the collector's OTLP/HTTP port (default 4318; 0: any free one)",
    )  # fmt: skip
    attached.add_argument(
        "--spans-wait", type=float, default=6.0, metavar="S",
        help="after the load, wait this long for the server's last spans (default: "
        "%(default)s; an OpenTelemetry batch exporter sends every 5 s)",
    )  # fmt: skip
    attached.add_argument(
        "--server-metrics", nargs="?", const="auto", metavar="URL",
        help="sample the server's Prometheus endpoint during the run (vLLM, SGLang, TGI "
        "families known); without URL, and by default with --collect-spans: URL/metrics "
        "when it answers; 'off': none",
    )  # fmt: skip
    managed = parser.add_argument_group(
        "managed run (no --url): start a collector and `open-autoglm serve` for the run"
    )
    managed.add_argument("--backend", help="backend to serve, e.g. sim, onnxruntime, vllm")
    managed.add_argument(
        "--backend-option", action="append", default=[], metavar="KEY=VALUE",
        help="passed to `serve --backend-option`, repeatable",
    )  # fmt: skip
    managed.add_argument("--max-batch-size", type=int, help="server's running batch limit")
    managed.add_argument("--max-model-len", type=int, help="server's context length limit")
    managed.add_argument("--device", help="server device: auto, cpu or cuda")
    managed.add_argument(
        "--target-tpot", type=float, metavar="MS", help="server's adaptive batching target"
    )
    target.add_argument("--api", choices=APIS, default="chat", help="endpoint (default: chat)")
    target.add_argument("--model", help="model name to send (default: first of /v1/models)")
    target.add_argument(
        "--api-key",
        help="sent as 'Authorization: Bearer KEY' (visible in `ps`: prefer --api-key-file or "
        "$OPENAI_API_KEY, read when the URL and headers carry no credentials); never written",
    )
    target.add_argument("--api-key-file", type=Path, help="read the API key from this file")
    target.add_argument(
        "--header", action="append", default=[], metavar="'NAME: VALUE'", help="extra header"
    )
    target.add_argument(
        "--body",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="extra request-body field, e.g. --body temperature=0",
    )
    target.add_argument("--ignore-eos", action="store_true", help="ask for exactly max_tokens")
    target.add_argument("--timeout", type=float, default=600.0, help="per request, s")
    target.add_argument(
        "--provider",
        help="gen_ai.provider.name on the client spans (default: openai, the API spoken; "
        "in a managed run, the backend)",
    )

    load = parser.add_argument_group("load profile")
    load.add_argument("--profile", choices=PROFILES, help="default: from the options given")
    load.add_argument("--concurrency", type=int, help="closed loop: requests in flight")
    load.add_argument("--rate", type=float, help="open loop: requests per second")
    load.add_argument(
        "--arrival", choices=ARRIVALS, default="poisson",
        help="open loop: how arrivals are spaced (poisson: exponential gaps)",
    )  # fmt: skip
    load.add_argument(
        "--burstiness", type=float, default=1.0, help="gamma shape (<1 burstier, 1 = Poisson)"
    )
    load.add_argument("--max-concurrency", type=int, help="open loop: cap on requests in flight")
    load.add_argument("--levels", help="step profile: comma-separated levels, e.g. 1,2,4,8")
    load.add_argument(
        "--level-kind", choices=("concurrency", "rate"), default="concurrency",
        help="step profile: what --levels count",
    )  # fmt: skip
    load.add_argument("--sweep-levels", type=int, default=6, help="sweep: rate levels between")
    load.add_argument("--sweep-concurrency", type=int, default=64, help="sweep: saturation level")
    load.add_argument(
        "--requests", type=int, help="requests per level (default: 100 when no --duration)"
    )
    load.add_argument("--duration", type=float, help="seconds per level")
    load.add_argument(
        "--warmup",
        type=float,
        default=0.0,
        help="seconds excluded at the start (default: %(default)s)",
    )
    load.add_argument(
        "--cooldown",
        type=float,
        default=0.0,
        help="seconds excluded at the end (default: %(default)s)",
    )

    work = parser.add_argument_group("workload")
    work.add_argument(
        "--dataset", choices=DATASETS, default="synthetic", help="where the prompts come from"
    )
    work.add_argument("--dataset-path", type=Path, help="ShareGPT JSON or JSONL file")
    work.add_argument("--input-len", type=int, default=128, help="prompt tokens (synthetic)")
    work.add_argument(
        "--input-dist", choices=DISTRIBUTIONS, default="fixed",
        help="distribution of prompt lengths around --input-len",
    )  # fmt: skip
    work.add_argument(
        "--input-spread", type=float, default=0.0,
        help="spread of prompt lengths (uniform: half-width, normal/lognormal: sigma; "
        "default: %(default)s)",
    )  # fmt: skip
    work.add_argument("--output-len", type=int, help="max_tokens (default 64, or the dataset's)")
    work.add_argument(
        "--output-dist", choices=DISTRIBUTIONS, default="fixed",
        help="distribution of max_tokens around --output-len",
    )  # fmt: skip
    work.add_argument(
        "--output-spread", type=float, default=0.0,
        help="spread of max_tokens (as --input-spread; default: %(default)s)",
    )  # fmt: skip
    work.add_argument(
        "--prefix-len", type=int, default=0, help="shared prefix tokens (default: %(default)s)"
    )
    work.add_argument(
        "--images", type=int, default=0, help="images per chat request (default: %(default)s)"
    )
    work.add_argument("--image-size", default="512x512", help="WIDTHxHEIGHT of synthetic images")
    work.add_argument(
        "--image-format", choices=IMAGE_FORMATS, default="png",
        help="encoding of synthetic images",
    )  # fmt: skip
    work.add_argument(
        "--image-file", action="append", default=[], type=Path, help="use these images"
    )
    work.add_argument(
        "--tokenizer",
        type=Path,
        help="for token counts: a tokenizer.json, a folder with one, or a model id in the local "
        "Hugging Face cache (default: an estimate)",
    )
    work.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of prompts, lengths and arrivals (default: %(default)s)",
    )

    out = parser.add_argument_group("output")
    out.add_argument(
        "--slo",
        help="objectives: per-request ones for goodput ('ttft<=500ms,tpot<=50ms') and, with a "
        "statistic, run-level ones for --fail-on-slo ('p95_e2e<=200ms,error_rate<=0.5%%')",
    )
    out.add_argument(
        "--fail-on-slo",
        action="store_true",
        help="after the run, check the run-level objectives (as `open-autoglm check`) and "
        "exit 1 when one is broken",
    )
    out.add_argument("--max-error-rate", help="with --fail-on-slo: e.g. 0.5%%")
    out.add_argument(
        "--run-dir",
        type=Path,
        help="a new directory for this run's results and records (and, managed, spans, "
        "samples, logs, report); default: runs/TIME-BACKEND, or runs/TIME-url with --url and "
        "no --output. A directory that holds a run already is refused",
    )
    out.add_argument(
        "--output",
        type=Path,
        help="--url: the results JSON (records beside it: requests.jsonl beside results.json, "
        "NAME.requests.jsonl beside NAME.json); managed or attached: the report JSON (default "
        "RUN_DIR/report.json), with report.html beside it; '-' writes the JSON to standard "
        "output (the summary then goes to standard error; the files go to the run directory)",
    )
    out.add_argument(
        "--records",
        type=Path,
        help="--url: the records file (never overwritten: an existing one is refused)",
    )
    out.add_argument("--otlp-endpoint", help="OTLP collector (default: $OTEL_EXPORTER_OTLP_*)")
    out.add_argument("--quiet", action="store_true", help="no live progress")
    add_report_arguments(
        parser.add_argument_group("report (managed run): what report.json and report.html show")
    )

    scale = parser.add_argument_group("distributed load (Ray; the [ray] extra)")
    scale.add_argument(
        "--workers", type=int, help="send from N worker processes (a local Ray unless an address)"
    )
    scale.add_argument(
        "--ray-address",
        help="run the workers on this Ray cluster (with --workers: default $RAY_ADDRESS); "
        "default one worker per node",
    )


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"bad --levels {text!r}: expected numbers like 1,2,4") from None
    if not values:
        raise UsageError("--levels is empty")
    return values


def build_config(args: argparse.Namespace, files: RunFiles | None = None) -> BenchmarkConfig:
    """The frozen config for ``args``, writing to ``files`` (default: planned from ``args``,
    :func:`plan_run_files`); raises :class:`UsageError` on a mistake in the flags or a path,
    and :class:`open_autoglm.loadgen.ConfigError` on a value the load generator refuses."""
    from open_autoglm.loadgen import (
        BenchmarkConfig,
        EndpointConfig,
        LengthDistribution,
        ProfileConfig,
        WorkloadConfig,
        api_key_from,
        carries_credentials,
        parse_body_field,
        parse_header,
        parse_size,
    )
    from open_autoglm.telemetry import TelemetryConfigError, TracingConfig, names

    if not args.url and not args.backend:
        raise UsageError(
            "give --url (an OpenAI-compatible server) or --backend (a managed run), e.g. "
            "--backend sim"
        )
    if args.url and args.backend:
        raise UsageError("--url and --backend exclude each other")
    if args.url:  # the server's flags of a managed run would be silently ignored
        server_flags = {"--backend-option": args.backend_option, "--max-batch-size":
                        args.max_batch_size, "--max-model-len": args.max_model_len,
                        "--device": args.device, "--target-tpot": args.target_tpot}  # fmt: skip
        given = [flag for flag, value in server_flags.items() if value not in (None, [])]
        if given:
            raise UsageError(
                f"{', '.join(given)} set up the server of a managed run (--backend); a server "
                "given with --url is configured where it runs"
            )
    if args.backend and (args.workers is not None or args.ray_address):
        raise UsageError("--workers and --ray-address drive a server given with --url")
    check_inputs(args)
    headers = dict(parse_header(h) for h in args.header)
    from_env = bool(args.url) and not carries_credentials(args.url, headers)
    key = api_key_from(args.api_key, args.api_key_file, os.environ, use_environment=from_env)
    endpoint = EndpointConfig(
        url=args.url or _MANAGED_PLACEHOLDER_URL,
        api=args.api,
        model=args.model,
        api_key=key.value if key else None,
        headers=headers,
        extra_body=dict(parse_body_field(b) for b in args.body),
        ignore_eos=args.ignore_eos,
        timeout_s=args.timeout,
        **({"provider": args.provider} if args.provider else {}),
    )
    kind: ProfileKind = args.profile or (
        "step"
        if args.levels
        else "rate"
        if args.rate is not None
        else "concurrency"
        if args.concurrency is not None
        else "single"
    )
    requests, duration = args.requests, args.duration
    if requests is None and duration is None:
        requests = 100
    profile = ProfileConfig(
        kind=kind,
        concurrency=args.concurrency,
        rate=args.rate,
        arrival=args.arrival,
        burstiness=args.burstiness,
        max_concurrency=args.max_concurrency,
        step_levels=_floats(args.levels) if args.levels else (),
        step_mode=args.level_kind,
        sweep_levels=args.sweep_levels,
        sweep_concurrency=args.sweep_concurrency,
        requests=requests,
        duration_s=duration,
        warmup_s=args.warmup,
        cooldown_s=args.cooldown,
    )
    if args.images and args.api != "chat":
        raise UsageError("--images needs --api chat")
    workload = WorkloadConfig(
        dataset=args.dataset,
        path=args.dataset_path,
        input_len=LengthDistribution(args.input_len, args.input_dist, args.input_spread),
        output_len=LengthDistribution(args.output_len or 64, args.output_dist, args.output_spread),
        output_len_from_dataset=args.output_len is None,
        prefix_len=args.prefix_len,
        images=args.images,
        image_size=parse_size(args.image_size),
        image_format=args.image_format,
        image_files=tuple(args.image_file),
        seed=args.seed,
    )
    goodput, _ = split_objectives(args.slo)
    try:
        tracing = TracingConfig.from_env(names.LOADGEN_SERVICE_NAME, endpoint=args.otlp_endpoint)
    except TelemetryConfigError as exc:
        raise UsageError(str(exc)) from None
    files = files or plan_run_files(args)
    return BenchmarkConfig(
        endpoint=endpoint,
        profile=profile,
        workload=workload,
        slo=goodput,
        seed=args.seed,
        output_path=files.results,
        records_path=files.records,
        tracing=tracing,
        tokenizer_path=args.tokenizer,
    )


def gate_objectives(args: argparse.Namespace) -> list[Any]:
    """The run-level objectives that ``--fail-on-slo`` checks (raises on a bad one)."""
    _, run_level = split_objectives(args.slo)
    objectives: list[Any] = list(run_level)
    if args.max_error_rate is not None:
        objectives.append(parse_error_rate(args.max_error_rate))
    if args.fail_on_slo and not objectives:
        raise UsageError(
            "--fail-on-slo needs run-level objectives, e.g. --slo 'p95_e2e<=200ms' or "
            "--max-error-rate 0.5%"
        )
    return objectives


def apply_gate(args: argparse.Namespace, objectives: list[Any], report: Path, status: int) -> int:
    if not args.fail_on_slo:
        return status
    from open_autoglm.analysis import check_report

    result = check_report(report, objectives)
    print(result.table(), file=sys.stderr if to_stdout(args) else sys.stdout)
    return status or result.exit_code


def run(args: argparse.Namespace) -> int:
    """The command; SIGINT, SIGTERM and SIGHUP stop it as Ctrl-C does (what finished is
    written, a one-line message, exit 128 + signal), wherever they arrive."""
    from open_autoglm._signals import handle_stop_signals, raise_interrupted

    with handle_stop_signals(raise_interrupted):
        try:
            return _run(args)
        except KeyboardInterrupt as exc:
            return stopped(exc, args)


def _run(args: argparse.Namespace) -> int:
    from open_autoglm.loadgen import (
        NullProgress,
        RichProgress,
        prepare_prompts,
        run_benchmark,
    )

    files = plan_run_files(args)  # every path checked before anything is sent
    args.run_dir = files.run_dir  # named in the message if the run is stopped
    args.records_file = files.records  # and, stopped before results, the records
    config = build_config(args, files)
    objectives = gate_objectives(args)
    report_options(args)  # one validation for every mode, before anything is sent
    server = managed_server(args) if args.backend else None
    if server is not None:
        _check_backend_installed(server.backend)
    target = attached_target(args)
    human = sys.stderr if to_stdout(args) else sys.stdout
    progress: ProgressReporter = NullProgress() if args.quiet else RichProgress()
    progress.phase(f"preparing {config.workload.pool_size} prompts ({config.workload.dataset})")
    try:  # the display ends however the run does (a server that never started, Ctrl-C)
        prompts = prepare_prompts(config)  # a bad dataset stops here, before anything is sent
        if server is not None:
            status, report_path = _run_managed(
                args, files, server, config, prompts, progress, human
            )
            return apply_gate(args, objectives, report_path, status)
        if target is not None:
            status, report_path = _run_attached(args, target, config, prompts, progress)
            return apply_gate(args, objectives, report_path, status)
        if args.workers is not None or args.ray_address:
            from open_autoglm.loadgen import distributed_config, run_distributed

            dist = distributed_config(args.workers, args.ray_address)
            results = run_distributed(config, dist, progress=progress, prompts=prompts)
        else:
            results = run_benchmark(config, progress=progress, prompts=prompts)
    finally:
        progress.close()
    print_summary(results, config, out=human)
    if files.run_dir is not None:
        print(f"run directory: {files.run_dir}", file=human)
    warn_on_failures(results)
    succeeded = sum(level.succeeded for level in results.levels)
    status = 0 if succeeded else 1
    if to_stdout(args):
        write_stdout(results.to_json())
    if config.output_path is None:
        return status
    return apply_gate(args, objectives, config.output_path, status)


#: Stands for the server's address until the managed run knows its port.
_MANAGED_PLACEHOLDER_URL = "http://127.0.0.1:1"


def _check_backend_installed(backend: str) -> None:
    """A backend whose engine is not installed: one line naming the extra, before anything
    starts (the server would fail the same way, after the collector had started)."""
    from open_autoglm.instrumented_servers import MissingEngineError, check_backend_installed

    try:
        check_backend_installed(backend)
    except MissingEngineError as exc:
        raise UsageError(str(exc)) from None


def managed_server(args: argparse.Namespace) -> ManagedServer:
    """The typed server of a managed run (``--backend`` and the flags under it)."""
    from open_autoglm.run import ManagedServer

    if args.backend not in BACKENDS:
        raise UsageError(f"unknown backend {args.backend!r}; choose one of {', '.join(BACKENDS)}")
    return ManagedServer(
        backend=args.backend,
        model=args.model,
        backend_options=parse_backend_options(args.backend_option),
        max_batch_size=args.max_batch_size,
        max_model_len=args.max_model_len,
        device=args.device,
        target_tpot_ms=args.target_tpot,
    )


def attached_target(args: argparse.Namespace) -> AttachedTarget | None:
    """The server of an attached run (``--url`` with ``--collect-spans`` or
    ``--server-metrics``), None for a plain ``--url`` run; raises :class:`UsageError`."""
    metrics = args.server_metrics
    if not args.url:
        if args.collect_spans or metrics is not None:
            raise UsageError(
                "--collect-spans and --server-metrics go with --url (a managed run collects "
                "spans and samples its server by itself)"
            )
        return None
    if metrics is None:
        metrics = "auto" if args.collect_spans else "off"
    if not args.collect_spans and metrics == "off":
        return None
    from open_autoglm.run import AttachedTarget, RunError, default_metrics_url

    for flag, port in (("--collector-grpc-port", args.collector_grpc_port),
                       ("--collector-http-port", args.collector_http_port)):  # fmt: skip
        if not 0 <= port <= 65535:
            raise UsageError(f"{flag} {port} is not in 0..65535")
    metrics_url: str | None = None
    if metrics == "auto":
        metrics_url = default_metrics_url(args.url)
        if metrics_url is None:
            print(f"note: {args.url.rstrip('/')}/metrics does not answer with Prometheus "
                  "metrics; no server metrics in the report", file=sys.stderr)  # fmt: skip
    elif metrics != "off":
        metrics_url = metrics
    try:
        return AttachedTarget(
            url=args.url,
            collect_spans=args.collect_spans,
            grpc_port=args.collector_grpc_port,
            http_port=args.collector_http_port,
            spans_wait_s=args.spans_wait,
            metrics_url=metrics_url,
        )
    except RunError as exc:
        raise UsageError(str(exc)) from None


def _run_attached(
    args: argparse.Namespace,
    target: AttachedTarget,
    config: BenchmarkConfig,
    prompts: list[Prompt],
    progress: ProgressReporter,
) -> tuple[int, Path]:
    """Load, collect, report (:func:`open_autoglm.run.run_attached`)."""
    import time

    from open_autoglm.run import run_attached

    run_dir: Path = args.run_dir or Path("runs") / (time.strftime("%Y%m%d-%H%M%S") + "-attached")
    report_path: Path = args.output or run_dir / "report.json"

    def announce(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    results, report = run_attached(
        config, target, run_dir, report_path, progress=progress, prompts=prompts,
        announce=announce, options=report_options(args),
    )  # fmt: skip
    print_summary(results, dataclasses.replace(config, output_path=None))
    stages = report.stages
    if stages is not None:
        print(f"{stages.with_server_spans}/{stages.requests} requests joined to server spans")
    if target.metrics_url is not None:
        print(f"server metrics: {report.resources.samples} samples of {target.metrics_url}")
    print(f"run directory: {run_dir}")
    print(f"report: {report_path} and {report_path.with_suffix('.html')}")
    return (0 if sum(level.succeeded for level in results.levels) else 1), report_path


def _run_managed(
    args: argparse.Namespace,
    files: RunFiles,
    server: ManagedServer,
    config: BenchmarkConfig,
    prompts: list[Prompt],
    progress: ProgressReporter,
    human: Any,
) -> tuple[int, Path]:
    """Serve, load, report (:func:`open_autoglm.run.run_managed`); the run's, server's,
    collector's and report's errors reach ``cli.py``, which prints their first line."""
    from open_autoglm.run import ChildDiedError, run_managed

    assert files.run_dir is not None
    assert files.report is not None
    run_dir, report_path = files.run_dir, files.report
    json_to_stdout = to_stdout(args)
    bench = dataclasses.replace(config, endpoint=dataclasses.replace(config.endpoint, model=None))
    try:
        results, report = run_managed(
            bench,
            server,
            run_dir,
            report_path,
            progress=progress,
            prompts=prompts,
            options=report_options(args),
        )
    except ChildDiedError as exc:  # what finished is written: show it, then the one line
        print_summary(exc.results, None, out=human)
        print(f"run directory: {run_dir}; report: {report_path}", file=human)
        raise
    print_summary(results, None, out=human)
    warn_on_failures(results)
    stages = report.stages
    if stages is not None:
        print(
            f"{stages.with_server_spans}/{stages.requests} requests joined to server spans",
            file=human,
        )
    print(f"run directory: {run_dir}", file=human)
    print(f"report: {report_path} and {report_path.with_suffix('.html')}", file=human)
    if json_to_stdout:
        write_stdout(report.to_json())
    return (0 if sum(level.succeeded for level in results.levels) else 1), report_path
