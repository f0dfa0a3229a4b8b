"""Run a benchmark: levels one after another, each request recorded as it finishes.

:func:`run_benchmark` is the library entry point (the CLI and the managed mode call it);
:func:`run_benchmark_async` does the same inside a running event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp
from opentelemetry.sdk.trace import TracerProvider

from open_autoglm import __version__
from open_autoglm._signals import begin_stop, handle_stop_signals
from open_autoglm.errors import Interrupted
from open_autoglm.loadgen._arrivals import arrival_offsets, level_rng
from open_autoglm.loadgen._client import StreamingClient
from open_autoglm.loadgen._dispatch import dispatch
from open_autoglm.loadgen._endpoint import EndpointConfig
from open_autoglm.loadgen._health import CpuMeter, LoopLagMonitor, assess
from open_autoglm.loadgen._profiles import Level, ProfileConfig
from open_autoglm.loadgen._progress import NullProgress, ProgressReporter
from open_autoglm.loadgen._records import Phase, RecordWriter, RequestRecord, records_beside
from open_autoglm.loadgen._results import (
    RESULTS_VERSION,
    BenchmarkResults,
    EndpointSummary,
    LevelResult,
    summarize_level,
)
from open_autoglm.loadgen._stop import BenchmarkInterrupted, RunStop
from open_autoglm.loadgen._tokens import TokenCounter, make_token_counter
from open_autoglm.loadgen._workloads import (
    Prompt,
    RequestSpec,
    WorkloadConfig,
    build_requests,
    load_prompts,
)
from open_autoglm.objectives import Goodput
from open_autoglm.telemetry import TracingConfig, make_tracer_provider, names

logger = logging.getLogger(__name__)

_STREAM_ARRIVALS = 0


@dataclass(frozen=True, slots=True)
class BenchmarkConfig:
    """Everything one run needs; built once (the CLI builds it from the command line)."""

    endpoint: EndpointConfig
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    slo: Goodput | None = None
    seed: int = 0
    output_path: Path | None = Path("results.json")
    #: default: beside ``output_path``, ``requests.jsonl`` for ``results.json`` and
    #: ``NAME.requests.jsonl`` for ``NAME.json``; never overwritten (RecordsExistError)
    records_path: Path | None = None
    tracing: TracingConfig | None = None  # None or no endpoint: traceparent ids, no spans
    tokenizer_path: Path | None = None

    @property
    def resolved_records_path(self) -> Path | None:
        if self.records_path is not None:
            return self.records_path
        return None if self.output_path is None else records_beside(self.output_path)


def prepare_prompts(config: BenchmarkConfig) -> list[Prompt]:
    """Load and check the workload: a bad dataset fails here, before anything is sent."""
    return load_prompts(config.workload, make_token_counter(config.tokenizer_path))


def run_benchmark(
    config: BenchmarkConfig,
    *,
    progress: ProgressReporter | None = None,
    tracer_provider: TracerProvider | None = None,
    prompts: list[Prompt] | None = None,
    stop: RunStop | None = None,
) -> BenchmarkResults:
    """Run ``config`` to the end on a fresh event loop (uvloop where installed).

    Called from the main thread, SIGINT, SIGTERM and SIGHUP stop the run (through ``stop``):
    requests in flight are recorded as cancelled, the partial results are written, and
    :class:`BenchmarkInterrupted` (a :class:`KeyboardInterrupt` carrying the signal and the
    partial results) propagates to the caller. ``stop.stop(reason)`` from another thread ends
    the run the same way but returns the partial results, ``stop_reason`` set. A later
    signal does not cut the stop short: a line on stderr says it is in progress
    (:func:`open_autoglm._signals.begin_stop`).
    """
    stop = stop if stop is not None else RunStop()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if begin_stop(signum):
            stop.stop(f"{Interrupted.name_of(signum)} received", signum)

    with handle_stop_signals(on_signal), asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(
            run_benchmark_async(
                config,
                progress=progress,
                tracer_provider=tracer_provider,
                prompts=prompts,
                stop=stop,
            )
        )


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # uvloop is optional (not on Windows)
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


async def run_benchmark_async(
    config: BenchmarkConfig,
    *,
    progress: ProgressReporter | None = None,
    tracer_provider: TracerProvider | None = None,
    prompts: list[Prompt] | None = None,
    stop: RunStop | None = None,
) -> BenchmarkResults:
    """:func:`run_benchmark` inside the running loop; installs no signal handler (``stop`` is
    how the caller ends the run early)."""
    counter = make_token_counter(config.tokenizer_path)
    if prompts is None:
        prompts = load_prompts(config.workload, counter)
    config.profile.levels()  # an impossible profile fails before anything is sent
    stop = stop if stop is not None else RunStop()
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    cancellable = [True]

    def cancel_in_loop() -> None:
        if cancellable[0]:
            task.cancel()

    def cancel() -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nothing left to stop
            loop.call_soon_threadsafe(cancel_in_loop)

    stop.bind(cancel)
    try:
        results = await _run_to_end(config, counter, prompts, progress, tracer_provider, stop)
    finally:
        cancellable[0] = False
        stop.unbind()
    if stop.signum is not None:
        raise BenchmarkInterrupted(stop.signum, results)
    return results


async def _run_to_end(
    config: BenchmarkConfig,
    counter: TokenCounter,
    prompts: list[Prompt],
    progress: ProgressReporter | None,
    tracer_provider: TracerProvider | None,
    stop: RunStop,
) -> BenchmarkResults:
    """The run; a cancellation from ``stop`` ends it early with what finished written."""
    # spans only where they go somewhere: a given provider, or an OTLP endpoint configured
    own_provider = tracer_provider is None
    provider = tracer_provider
    if provider is None and config.tracing is not None and config.tracing.exports:
        provider = make_tracer_provider(config.tracing)
    tracer = provider.get_tracer(names.TRACER_NAME) if provider is not None else None
    records_path = config.resolved_records_path
    writer = RecordWriter(records_path) if records_path is not None else None
    started = time.time_ns()
    run = _Run(config, [], writer, progress or NullProgress())
    model = config.endpoint.model or "unknown"
    interrupted = False
    try:
        model = config.endpoint.model or await discover_model(config.endpoint)
        run.specs = build_requests(prompts, config.endpoint, model)
        async with StreamingClient(config.endpoint, model, tracer, counter) as client:
            run.client = client
            await run.all_levels()
    except asyncio.CancelledError:
        interrupted = True
        task = asyncio.current_task()
        if stop.reason is None or task is None:
            raise  # cancelled by our caller, not stopped: pass it on
        task.uncancel()
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        if writer is not None:
            writer.close()
        if own_provider and provider is not None:
            provider.shutdown()
        results = _results(
            config, model, run.results, started, interrupted, records_path, stop.reason
        )
        results = dataclasses.replace(results, tokenizer=counter.name)
        if config.output_path is not None:
            results.write(config.output_path)
        run.progress.close()
    return results


async def discover_model(endpoint: EndpointConfig) -> str:
    """The first model the server lists at ``/v1/models``; ``"default"`` if it lists none or
    cannot be reached (then every request records the connection error)."""
    url = endpoint.base_url + "/v1/models"
    try:
        timeout = aiohttp.ClientTimeout(total=min(10.0, endpoint.timeout_s))
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, headers=endpoint.request_headers()) as resp,
        ):
            data = await resp.json(content_type=None)
            model = str(data["data"][0]["id"])
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, IndexError, TypeError) as exc:
        logger.warning("no model from %s (%s); sending model 'default'", url, type(exc).__name__)
        return "default"
    logger.info("model %s (from %s)", model, url)
    return model


def _results(
    config: BenchmarkConfig,
    model: str,
    levels: list[LevelResult],
    started: int,
    interrupted: bool,
    records_path: Path | None,
    stop_reason: str | None = None,
) -> BenchmarkResults:
    endpoint = config.endpoint
    bound = [lvl.label for lvl in levels if lvl.health.client_bound]
    if bound:
        summary = (
            f"The client, not the server, was the bottleneck at {', '.join(bound)}; "
            "those levels measure the client. See each level's health statement."
        )
    else:
        summary = "The client kept up at every level; the latencies measure the server."
    busy = [lvl.label for lvl in levels if lvl.health.machine_busy]
    if busy:
        summary += (
            f" The machine was busy at {', '.join(busy)}: other processes delayed the client's "
            "event loop, so latencies there may include client-side delay."
        )
    if interrupted:
        summary = f"Stopped early: {stop_reason or 'interrupted'}; partial results. " + summary
    return BenchmarkResults(
        version=RESULTS_VERSION,
        tool_version=__version__,
        started_unix_ns=started,
        finished_unix_ns=time.time_ns(),
        interrupted=interrupted,
        endpoint=EndpointSummary(
            url=endpoint.request_url,
            api=endpoint.api,
            model=model,
            ignore_eos=endpoint.ignore_eos,
            timeout_s=endpoint.timeout_s,
            headers=sorted(endpoint.headers),  # names only: values may be secrets
            extra_body=dict(endpoint.extra_body),
            api_key=endpoint.api_key is not None,
        ),
        workload=config.workload,
        profile=config.profile,
        slo=config.slo.describe() if config.slo else None,
        seed=config.seed,
        records_path=_named_from(config.output_path, records_path),
        levels=levels,
        client_bound=bool(bound),
        summary=summary,
        stop_reason=stop_reason if interrupted else None,
    )


def _named_from(results: Path | None, records: Path | None) -> str | None:
    """The records file as the results name it: its name alone when it sits beside the
    results (the pair moves together), else its absolute path — never a guess."""
    if records is None:
        return None
    if results is not None and records.parent.resolve() == results.parent.resolve():
        return records.name
    return str(records.resolve())


class _Run:
    def __init__(
        self,
        config: BenchmarkConfig,
        specs: list[RequestSpec],
        writer: RecordWriter | None,
        progress: ProgressReporter,
    ) -> None:
        self.config = config
        self.specs = specs
        self.writer = writer
        self.progress = progress
        self.client: StreamingClient | None = None
        self.results: list[LevelResult] = []
        self._next_index = 0

    async def all_levels(self) -> None:
        profile: ProfileConfig = self.config.profile
        levels = profile.levels()
        for level in levels:
            await self.level(level)
        if profile.kind == "sweep" and len(self.results) == 2:
            sync, top = self.results
            for level in profile.sweep_rate_levels(sync.request_throughput, top.request_throughput):
                await self.level(level)

    async def level(self, level: Level) -> None:
        index = len(self.results)
        records: list[RequestRecord] = []
        monitor = LoopLagMonitor()
        monitor.start()
        cpu = CpuMeter()
        started_unix = time.time_ns()
        origin = time.perf_counter_ns()
        self.progress.level_started(
            index, level.label, level.requests, level.duration_s, level.warmup_s
        )
        try:
            if level.mode == "concurrency":
                end = level.duration_s
                await self._closed(index, level, origin, records, end)
            else:
                await self._open(index, level, origin, records)
        finally:
            loop_lags = await monitor.stop()
            measured = [r for r in records if r.measured]
            health = assess([r.sched_lag_s for r in measured], loop_lags, cpu.read())
            result = summarize_level(index, level, records, started_unix, self.config.slo, health)
            self.results.append(result)
            self.progress.level_finished(result)

    def _phase(self, level: Level, due_s: float, cooldown_from: float | None) -> Phase:
        """Warm-up and cool-down go by when a request was due, so that a request held back
        by the client's limiter stays in the window it was meant for."""
        if due_s < level.warmup_s:
            return "warmup"
        if level.cooldown_s > 0 and cooldown_from is not None and due_s > cooldown_from:
            return "cooldown"
        return "measure"

    async def _one(
        self,
        index: int,
        level_index: int,
        level: Level,
        due_ns: int,
        origin: int,
        records: list[RequestRecord],
        limiter: asyncio.Semaphore | None,
        cooldown_from: float | None,
    ) -> None:
        wake = time.perf_counter_ns()
        spec = self.specs[index % len(self.specs)]
        queue_ns = 0
        if limiter is not None:
            await limiter.acquire()
            queue_ns = time.perf_counter_ns() - wake
        record = RequestRecord(
            index=index,
            level=level_index,
            phase="measure",
            scheduled_s=(due_ns - origin) / 1e9,
            sched_lag_s=(wake - due_ns) / 1e9,
            queue_s=queue_ns / 1e9,
            sent_s=(wake - origin) / 1e9,
            sent_unix_ns=time.time_ns(),
        )
        try:
            assert self.client is not None
            await self.client.send(spec, record, origin)
        finally:
            if limiter is not None:
                limiter.release()
            record.phase = self._phase(level, record.scheduled_s, cooldown_from)
            records.append(record)
            if self.writer is not None:
                self.writer.write(record)
            self.progress.record(record)

    def _take_index(self) -> int:
        index = self._next_index
        self._next_index += 1
        return index

    async def _closed(
        self,
        level_index: int,
        level: Level,
        origin: int,
        records: list[RequestRecord],
        duration_s: float | None,
    ) -> None:
        """Closed loop: ``concurrency`` workers, each sends its next request as soon as its
        previous one is done; intended send time is that moment."""
        deadline = origin + int(duration_s * 1e9) if duration_s is not None else None
        remaining = [level.requests if level.requests is not None else -1]
        cooldown_from = duration_s - level.cooldown_s if duration_s is not None else None

        async def worker() -> None:
            due = time.perf_counter_ns()
            while remaining[0] != 0 and (deadline is None or due < deadline):
                remaining[0] -= 1
                await self._one(
                    self._take_index(),
                    level_index,
                    level,
                    due,
                    origin,
                    records,
                    None,
                    cooldown_from,
                )
                due = time.perf_counter_ns()

        await _gather_all([worker() for _ in range(level.concurrency)])

    async def _open(
        self, level_index: int, level: Level, origin: int, records: list[RequestRecord]
    ) -> None:
        """Open loop: sends at the drawn arrival times whatever the server's state, each
        request in its own task; ``max_concurrency`` makes late ones wait (client queue)."""
        rng = level_rng(self.config.seed, level_index, _STREAM_ARRIVALS)
        offsets = arrival_offsets(
            level.value,
            level.arrival,
            level.burstiness,
            rng,
            count=level.requests,
            duration_s=level.duration_s,
        )
        if level.duration_s is not None:
            cooldown_from: float | None = level.duration_s - level.cooldown_s
        else:
            cooldown_from = float(offsets[-1]) - level.cooldown_s if len(offsets) else None
        limiter = asyncio.Semaphore(level.max_concurrency) if level.max_concurrency else None
        due_ns = [origin + int(off * 1e9) for off in offsets]
        tasks: set[asyncio.Task[None]] = set()
        try:

            def send(_: int, due: int) -> Coroutine[Any, Any, None]:
                return self._one(
                    self._take_index(), level_index, level, due, origin, records, limiter,
                    cooldown_from,
                )  # fmt: skip

            await dispatch(due_ns, send, tasks)
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)


async def _gather_all(coros: list[Coroutine[Any, Any, None]]) -> None:
    """Run ``coros`` together; on any error or cancellation cancel the rest and wait for them
    (each writes its record as it unwinds)."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
