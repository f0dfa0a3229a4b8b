"""A managed run: collector and server started for the benchmark, stopped after it.

:func:`run_managed` (``open-autoglm benchmark --backend X``, no ``--url``) starts the
embedded collector and ``open-autoglm serve --backend X`` as child processes on free loopback
ports, points both the server and the load generator at the collector, samples the server's
``/metrics`` while the load runs and watches its peak memory from the moment it is spawned
(:class:`ServerMemoryWatch`: the model load apart, then interval by interval), stops the
children (SIGTERM: each flushes what it holds), then builds the report from the run
directory.

Stopping and failing: SIGINT, SIGTERM and SIGHUP stop the load (requests in flight recorded
as cancelled), stop the children (each as a process group), write the results and the report
of what finished, then raise :class:`~open_autoglm.errors.Interrupted`. The children are
watched while the load runs (:class:`ChildWatch`): when one dies the load stops at once, the
results and the report of what finished are written (its notes say which child died and how),
and :class:`ChildDiedError` is raised. Children are stopped on any error, and a child whose
parent is killed outright stops by itself (:mod:`open_autoglm._child_process`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from open_autoglm.analysis import (
    Report,
    ReportOptions,
    RunDirectory,
    RunInfo,
    build_report,
    write_html,
)
from open_autoglm.collector import CollectorConfig, CollectorProcess
from open_autoglm.errors import OpenAutoGLMError
from open_autoglm.instrumented_servers import ServerProcess
from open_autoglm.loadgen import (
    RECORDS_FILE,
    BenchmarkConfig,
    BenchmarkResults,
    ProgressReporter,
    Prompt,
    RunStop,
    run_benchmark,
)
from open_autoglm.run._child_watch import ChildWatch
from open_autoglm.run._errors import ChildDiedError, RunDirectoryError
from open_autoglm.run._hardware import hardware
from open_autoglm.run._log_follower import LogFollower
from open_autoglm.run._memory_watch import ServerMemoryWatch
from open_autoglm.run._metric_sampler import MetricSampler
from open_autoglm.run._server import ManagedServer
from open_autoglm.telemetry import GpuProbe, TracingConfig
from open_autoglm.telemetry import names as n

logger = logging.getLogger(__name__)


def prepare_run_dir(run_dir: Path) -> None:
    """Create ``run_dir``; refuse one that holds another run (records would be mixed)."""
    files = RunDirectory(run_dir)
    for path in (run_dir / RECORDS_FILE, files.spans_path):
        if path.exists():
            raise RunDirectoryError(
                f"{run_dir} already holds a run ({path.name}); choose a new --run-dir"
            )
    run_dir.mkdir(parents=True, exist_ok=True)


def run_managed(
    bench: BenchmarkConfig,
    server: ManagedServer,
    run_dir: Path,
    report_path: Path,
    *,
    progress: ProgressReporter | None = None,
    prompts: Sequence[Prompt] | None = None,
    options: ReportOptions | None = None,
) -> tuple[BenchmarkResults, Report]:
    """Run the benchmark against a server of our own; return its results and the report
    (both also written to files; ``options``: what the report shows).

    Raises :class:`~open_autoglm.errors.Interrupted` on SIGINT/SIGTERM/SIGHUP and
    :class:`ChildDiedError` when a child dies mid-run, each once the results and the report of
    what finished are written."""
    prepare_run_dir(run_dir)
    files = RunDirectory(run_dir)
    collector_config = CollectorConfig(db_path=files.spans_path)
    interrupted: KeyboardInterrupt | None = None
    stop = RunStop()
    say = progress.phase if progress is not None else (lambda _text: None)
    say("starting the collector")
    with CollectorProcess(collector_config, log_path=run_dir / "collector.log") as collector:
        endpoint = collector.http_endpoint
        assert endpoint is not None
        env = {**os.environ, "OTEL_BSP_SCHEDULE_DELAY": "200"}
        memory = ServerMemoryWatch(files.memory_path, gpu=GpuProbe())
        starting = f"starting the server ({server.backend}"
        say(starting + "): preparing and loading the model")
        # the server's own words while it starts (model preparation can take minutes)
        follower = LogFollower(run_dir / "server.log", lambda line: say(f"{starting}): {line}"))

        def spawned(pid: int) -> None:
            memory.attach(pid)
            follower.start()

        try:
            with ServerProcess(
                server.serve_args(endpoint, files.export_stats_path),
                env=env,
                timeout_s=server.start_timeout_s,
                log_path=run_dir / "server.log",
                on_spawn=spawned,
            ) as process:
                follower.stop()
                memory.serving()
                say(f"server ready ({server.backend}); starting the load")
                _write_run_file(run_dir, server, process.url)
                sampler = MetricSampler(process.url, files.metrics_path).start()
                config = dataclasses.replace(
                    bench,
                    endpoint=dataclasses.replace(
                        bench.endpoint, url=process.url, provider=_provider(bench, server)
                    ),
                    tracing=TracingConfig(
                        service_name=n.LOADGEN_SERVICE_NAME, endpoint=endpoint, protocol="http/json"
                    ),
                    output_path=files.results_path,
                    records_path=run_dir / RECORDS_FILE,
                )
                watch = ChildWatch({"server": process, "collector": collector}, stop)
                try:
                    with watch:
                        results = run_benchmark(
                            config,
                            progress=progress,
                            prompts=list(prompts) if prompts else None,
                            stop=stop,
                        )
                except KeyboardInterrupt as exc:  # partial results are on disk: report them
                    interrupted = exc
                finally:
                    sampler.stop()
                    memory.stop()  # (also below, when the server never started)
        finally:
            follower.stop()
            memory.stop()
    stopped_early = interrupted is not None or watch.death is not None
    report = _report(run_dir, report_path, options, tolerate_errors=stopped_early)
    if interrupted is not None:
        raise interrupted
    if watch.death is not None:
        raise ChildDiedError(watch.death, results, report)
    assert report is not None
    return results, report


def write_report(run_dir: Path, report_path: Path, options: ReportOptions | None = None) -> Report:
    """Build the report of ``run_dir``; write it to ``report_path`` (HTML beside it) and, when
    that is elsewhere, to the run directory too."""
    report = _report(run_dir, report_path, options, tolerate_errors=False)
    assert report is not None
    return report


def _report(
    run_dir: Path, report_path: Path, options: ReportOptions | None, *, tolerate_errors: bool
) -> Report | None:
    """Build and write the report (JSON, HTML, and ``RUN_DIR/report.json``). After a run that
    stopped early a report that cannot be built is logged, not raised: the stop is the news."""
    try:
        report = build_report(run_dir, options=options)
    except OpenAutoGLMError as exc:
        if not tolerate_errors:
            raise
        logger.error("no report of the stopped run: %s", exc)
        return None
    report.write(report_path)
    write_html(report, report_path.with_suffix(".html"))
    own = RunDirectory(run_dir).report_path
    if report_path.resolve() != own.resolve():
        report.write(own)
    return report


def _provider(bench: BenchmarkConfig, server: ManagedServer) -> str:
    """The client spans' ``gen_ai.provider.name``: the backend, unless the user named one."""
    given = bench.endpoint.provider
    return server.backend if given == n.PROVIDER_OPENAI else given


def _write_run_file(run_dir: Path, server: ManagedServer, url: str) -> None:
    try:
        health = httpx.get(f"{url}/health", timeout=5.0).json()
    except (httpx.HTTPError, ValueError):
        health = {}
    RunInfo(
        mode="managed",
        backend=server.backend,
        model=health.get("model", server.model),
        simulated=bool(health.get("simulated", False)),
        runtime={str(k): str(v) for k, v in (health.get("runtime") or {}).items()},
        server_args=server.server_args(),
        url=url,
        hardware=hardware(),
        started_unix_ns=time.time_ns(),
        run_dir=str(run_dir.resolve()),
    ).write(RunDirectory(run_dir).run_path)
