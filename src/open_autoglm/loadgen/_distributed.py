"""A run whose load comes from N worker processes on a Ray cluster (``--workers``).

The driver (this process) keeps everything that makes the run one run: it splits each
level's load (:mod:`~open_autoglm.loadgen._split`), starts every worker's share at one
instant on the wall clock (each worker's clock offset to the driver is measured first and
applied), streams the finished records from the workers while they run, writes the one
``requests.jsonl`` (worker id on each record, ``sent_unix_ns`` on the driver's clock) and
builds the same results document as a single-process run, plus a ``distributed`` section.

Closed loop: the concurrency is split across the workers and a request count is handed
out in tickets as workers use them up, so fast workers take over the tail. A worker lost
mid-run (killed, node gone) keeps the records it had streamed; its slots (closed loop) or
its arrivals not yet due (open loop) go to the other workers and the run goes on.

Ray is imported (by :mod:`~open_autoglm.loadgen._worker_pool`) only when such a run starts.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import orjson

from open_autoglm._signals import begin_stop, stop_signal
from open_autoglm.errors import Interrupted
from open_autoglm.loadgen._level_merge import LevelRun, merge_level
from open_autoglm.loadgen._profiles import Level
from open_autoglm.loadgen._progress import NullProgress, ProgressReporter
from open_autoglm.loadgen._records import RecordWriter, RequestRecord
from open_autoglm.loadgen._results import BenchmarkResults, LevelResult
from open_autoglm.loadgen._runner import BenchmarkConfig, _results, discover_model
from open_autoglm.loadgen._split import WorkerArrivals, split_arrivals, split_evenly
from open_autoglm.loadgen._stop import BenchmarkInterrupted
from open_autoglm.loadgen._tokens import make_token_counter
from open_autoglm.loadgen._worker import Control, LevelPlan
from open_autoglm.loadgen._worker_pool import (
    STOP_TIMEOUT_S,
    DistributedConfig,
    DistributedError,
    WorkerHandle,
    WorkerPool,
    describe_worker,
    first_line,
    import_ray,
)
from open_autoglm.loadgen._workloads import Prompt, build_requests, load_prompts

logger = logging.getLogger(__name__)


def distributed_config(
    workers: int | None, address: str | None, environ: dict[str, str] | None = None
) -> DistributedConfig:
    """The config for ``--workers`` / ``--ray-address``: with ``--workers`` alone the
    address is ``$RAY_ADDRESS`` when set (as ``ray.init`` does), else a local Ray."""
    env = os.environ if environ is None else environ
    if address is None and workers is not None:
        address = env.get("RAY_ADDRESS") or None
    return DistributedConfig(workers=workers, address=address)


def run_distributed(
    config: BenchmarkConfig,
    distributed: DistributedConfig,
    *,
    progress: ProgressReporter | None = None,
    prompts: list[Prompt] | None = None,
) -> BenchmarkResults:
    """Run ``config`` from the workers of ``distributed``; same results as
    :func:`~open_autoglm.loadgen.run_benchmark`, plus ``results.distributed``.

    Raises :class:`DistributedError` when Ray is missing, the cluster cannot be reached or
    every worker is lost (what finished is written first). Ctrl-C or SIGTERM stop every
    worker, keep what finished, write partial results and raise :class:`BenchmarkInterrupted`
    (the signal and those results, as :func:`~open_autoglm.loadgen.run_benchmark`).
    """
    if distributed.address is None and "ray" not in sys.modules:
        # A local Ray advertises the machine's address unless told it is not a cluster:
        # then every node address is loopback (127.0.0.1).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = import_ray()
    counter = make_token_counter(config.tokenizer_path)
    if prompts is None:
        prompts = load_prompts(config.workload, counter)
    config.profile.levels()
    driver = _Driver(ray, config, distributed, progress or NullProgress())
    return driver.run(prompts)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the run as Ctrl-C does (only the main thread can set handlers). Set
    after ``ray.init``, whose failure-signal handler would otherwise end the process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        if begin_stop(signum):  # a later signal lets the stop finish
            raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        # a handler set outside Python (Ray's) reads as None and cannot be put back
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


class _Driver:
    def __init__(
        self,
        ray: Any,
        config: BenchmarkConfig,
        distributed: DistributedConfig,
        progress: ProgressReporter,
    ) -> None:
        self.ray = ray
        self.config = config
        self.dist = distributed
        self.progress = progress
        self.pool = WorkerPool(ray, distributed)
        self.workers: list[WorkerHandle] = self.pool.workers  # the pool fills it
        self.results: list[LevelResult] = []
        self.level_notes: list[dict[str, Any]] = []
        self.next_index = 0
        self.writer: RecordWriter | None = None
        self.interrupted = False

    # -- the run -----------------------------------------------------------------------

    def run(self, prompts: list[Prompt]) -> BenchmarkResults:
        config = self.config
        model = config.endpoint.model or _discover(config)
        specs = build_requests(prompts, config.endpoint, model)
        records_path = config.resolved_records_path
        started = time.time_ns()
        failure: BaseException | None = None
        interrupt: KeyboardInterrupt | None = None
        self.pool.connect()
        with _sigterm_as_interrupt():
            try:
                self.pool.start(config, tuple(specs), model)
                self.writer = RecordWriter(records_path) if records_path else None
                self._all_levels()
            except KeyboardInterrupt as exc:
                self.interrupted = True
                interrupt = exc
            except DistributedError as exc:
                failure = exc
                raise
            finally:
                if self.writer is not None:
                    self.writer.close()
                self.pool.shutdown()
                results = self._finish(model, started, records_path, failure)
                self.progress.close()
        if interrupt is not None:  # as run_benchmark: the signal and what finished
            signum = (
                interrupt.signum
                if isinstance(interrupt, Interrupted)
                else stop_signal() or signal.SIGINT
            )
            raise BenchmarkInterrupted(signum, results) from None
        return results

    def _finish(
        self,
        model: str,
        started: int,
        records_path: Path | None,
        failure: BaseException | None,
    ) -> BenchmarkResults:
        results = _results(
            self.config, model, self.results, started, self.interrupted, records_path
        )
        notes: list[str] = []
        bound = [n["bottleneck"] for n in self.level_notes if n.get("bottleneck")]
        if bound:
            more = f" (and at {len(bound) - 1} more levels)" if len(bound) > 1 else ""
            notes.append(bound[0] + more)
        for worker in self.workers:
            if worker.lost is not None:
                notes.append(worker.lost["statement"])
        if failure is not None:
            notes.append(str(failure))
        summary = " ".join([results.summary, *notes])
        results = dataclasses.replace(
            results,
            summary=summary,
            distributed={
                "ray_version": str(getattr(self.ray, "__version__", "")),
                "address": self.dist.address or "local",
                "workers": [describe_worker(w) for w in self.workers],
                "levels": self.level_notes,
            },
        )
        if self.config.output_path is not None:
            results.write(self.config.output_path)
        return results

    def _all_levels(self) -> None:
        profile = self.config.profile
        for level in profile.levels():
            self._level(level)
        if profile.kind == "sweep" and len(self.results) == 2:
            sync, top = self.results
            for level in profile.sweep_rate_levels(sync.request_throughput, top.request_throughput):
                self._level(level)

    # -- one level ---------------------------------------------------------------------

    def _level(self, level: Level) -> None:
        alive = [w for w in self.workers if w.alive]
        if not alive:
            raise DistributedError("every worker was lost; the run stopped")
        index = len(self.results)
        start_ns = time.time_ns() + int(self.dist.start_margin_s * 1e9)
        run = LevelRun(index=index, level=level, start_ns=start_ns)
        run.participants = [w.id for w in alive]
        plans = self._plans(run, alive)
        self.progress.level_started(index, level.label, level.requests, level.duration_s)
        pending_run = {w.id: w.actor.run_level.remote(plans[w.id]) for w in alive}
        cpu = time.process_time()
        try:
            self._collect(run, pending_run)
        except KeyboardInterrupt:
            self.interrupted = True
            self._stop_all(run, pending_run)
            run.driver_cpu_s = time.process_time() - cpu
            self._finish_level(run)
            raise
        run.driver_cpu_s = time.process_time() - cpu
        self._finish_level(run)

    def _plans(self, run: LevelRun, alive: list[WorkerHandle]) -> dict[int, LevelPlan]:
        level, index = run.level, run.index
        base = self.next_index
        plans: dict[int, LevelPlan] = {}
        for worker in alive:
            worker.granted = worker.started = worker.started_at_last_poll = 0
            worker.slots, worker.arrivals, worker.control = 0, None, {}
        if level.mode == "rate":
            shares = split_arrivals(level, index, self.config.seed, len(alive), base)
            caps = (
                split_evenly(level.max_concurrency, len(alive))
                if level.max_concurrency
                else [None] * len(alive)
            )
            total = sum(len(s) for s in shares)
            last = max((float(s.offsets_s[-1]) for s in shares if len(s)), default=0.0)
            if level.duration_s is not None:
                cooldown_from: float | None = level.duration_s - level.cooldown_s
            else:
                cooldown_from = last - level.cooldown_s if total else None
            self.next_index = base + total
            for worker, share, cap in zip(alive, shares, caps, strict=True):
                worker.arrivals = share
                plans[worker.id] = LevelPlan(
                    index=index,
                    level=level,
                    start_unix_ns=run.start_ns + worker.offset_ns,
                    clock_offset_ns=worker.offset_ns,
                    cooldown_from_s=cooldown_from,
                    arrivals=share,
                    max_in_flight=max(cap, 1) if cap is not None else None,
                )
            return plans
        slots = split_evenly(level.concurrency, len(alive))
        stride = len(self.workers)
        cooldown_from = (
            level.duration_s - level.cooldown_s if level.duration_s is not None else None
        )
        if level.requests is not None:
            run.pool = level.requests
        for worker, n_slots in zip(alive, slots, strict=True):
            worker.slots = n_slots
            tickets = -1
            if level.requests is not None:
                want = max(2 * n_slots, level.requests // (4 * len(alive))) if n_slots else 0
                tickets = min(run.pool, want)
                run.pool -= tickets
                worker.granted = tickets
            plans[worker.id] = LevelPlan(
                index=index,
                level=level,
                start_unix_ns=run.start_ns + worker.offset_ns,
                clock_offset_ns=worker.offset_ns,
                cooldown_from_s=cooldown_from,
                slots=n_slots,
                tickets=tickets,
                tickets_closed=run.pool == 0,
                index_base=base,
            )
        run.closed_sent = run.pool == 0
        # closed-loop indices are base + worker + workers * k; the next level starts past
        # the highest one used (see _finish_level)
        self.next_index = base + stride
        return plans

    def _collect(self, run: LevelRun, pending_run: dict[int, Any]) -> None:
        """Poll every worker until each has finished the level and handed over its last
        records; a worker that fails a call is lost."""
        ray = self.ray
        interval = self.dist.poll_interval_s
        polls: dict[int, Any] = {}
        last_poll: dict[int, float] = {}
        done: set[int] = set()  # run_level returned
        final_sent: set[int] = set()  # a poll was sent after that
        drained: set[int] = set()
        while True:
            alive = [w for w in self.workers if w.alive and w.id in run.participants]
            if all(w.id in drained for w in alive):
                return
            now = time.perf_counter()
            for worker in alive:
                if worker.id in polls or worker.id in drained:
                    continue
                if worker.id in done or now - last_poll.get(worker.id, 0.0) >= interval:
                    polls[worker.id] = worker.actor.poll.remote(self._control(run, worker))
                    last_poll[worker.id] = now
                    if worker.id in done:
                        final_sent.add(worker.id)
            refs = list(pending_run.values()) + list(polls.values())
            if not refs:
                continue
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=interval)
            ready_set = set(ready)
            for wid, ref in list(pending_run.items()):
                if ref in ready_set:
                    del pending_run[wid]
                    try:
                        run.reports[wid] = ray.get(ref)
                        done.add(wid)
                    except ray.exceptions.RayError as exc:
                        self._lose(run, self.workers[wid], exc, pending_run, polls)
            for wid, ref in list(polls.items()):
                if ref in ready_set:
                    del polls[wid]
                    worker = self.workers[wid]
                    if not worker.alive:
                        continue
                    try:
                        reply = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        self._lose(run, worker, exc, pending_run, polls)
                        continue
                    logger.debug("worker %d: %d records in", wid, reply.count)
                    self._take(run, reply.records, reply.count)
                    worker.started_at_last_poll, worker.started = worker.started, reply.started
                    run.redealt += reply.accepted_arrivals
                    if wid in final_sent:
                        drained.add(wid)

    def _control(self, run: LevelRun, worker: WorkerHandle) -> Control | None:
        """What this poll changes: pending slot changes and arrivals, and closed-loop
        tickets topped up so that no worker waits for one."""
        pending, worker.control = worker.control, {}
        grant, close = 0, False
        if run.pool >= 0 and worker.slots > 0:
            unstarted = worker.granted - worker.started
            pace = worker.started - worker.started_at_last_poll
            want = max(2 * worker.slots, 3 * pace)
            grant = min(run.pool, max(0, want - unstarted))
            run.pool -= grant
            worker.granted += grant
        if run.pool == 0 and not run.closed_sent:
            # no more tickets for anyone: tell every worker, so none waits for one
            for other in self.workers:
                if other.alive and other is not worker:
                    other.control["close"] = True
            run.closed_sent = True
            close = True
        if not (grant or close or pending):
            return None  # nothing to change: the poll does not visit the worker's loop
        return Control(
            grant=grant,
            close=close or bool(pending.get("close")),
            slots=pending.get("slots"),
            arrivals=pending.get("arrivals"),
        )

    def _finish_level(self, run: LevelRun) -> None:
        if run.records:
            self.next_index = max(self.next_index, max(r.index for r in run.records) + 1)
        result, note = merge_level(run, self.pool.workers, self.config.slo)
        self.results.append(result)
        self.level_notes.append(note)
        self.progress.level_finished(result)

    def _take(self, run: LevelRun, lines: bytes, count: int) -> None:
        """One batch of a worker's JSON lines (already on the driver's clock): written as it
        came, in one write, and parsed in one call for the level's summary."""
        if not lines:
            return
        if self.writer is not None:
            self.writer.write_lines(lines, count)
        progress = self.progress
        for fields in orjson.loads(b"[" + lines.rstrip(b"\n").replace(b"\n", b",") + b"]"):
            record = RequestRecord(**fields)
            run.records.append(record)
            progress.record(record)

    def _lose(
        self,
        run: LevelRun,
        worker: WorkerHandle,
        exc: BaseException,
        pending_run: dict[int, Any],
        polls: dict[int, Any],
    ) -> None:
        """Mark ``worker`` lost and hand its share to the others."""
        worker.alive = False
        pending_run.pop(worker.id, None)
        polls.pop(worker.id, None)
        now_ns = time.time_ns()
        elapsed = (now_ns - run.start_ns) / 1e9
        kept = sum(1 for r in run.records if r.worker == worker.id)
        survivors = [w for w in self.workers if w.alive and w.id in run.participants]
        moved = ""
        if survivors and run.level.mode == "concurrency" and worker.slots:
            extra = split_evenly(worker.slots, len(survivors))
            for other, add in zip(survivors, extra, strict=True):
                if add:
                    other.slots += add
                    other.control["slots"] = other.slots
            if run.pool >= 0:
                run.pool += max(0, worker.granted - worker.started)
            moved = f"its {worker.slots} slots went to the other workers"
        elif survivors and worker.arrivals is not None:
            due = worker.arrivals.offsets_s > elapsed + 2 * self.dist.poll_interval_s
            offsets, indices = worker.arrivals.offsets_s[due], worker.arrivals.indices[due]
            for k, other in enumerate(survivors):
                share = WorkerArrivals(offsets_s=offsets[k :: len(survivors)],
                                       indices=indices[k :: len(survivors)])  # fmt: skip
                if len(share):
                    other.control["arrivals"] = share
            moved = f"its {int(due.sum())} arrivals not yet due went to the other workers"
        statement = (
            f"Worker {worker.id} ({worker.info.get('host', '?')}, pid "
            f"{worker.info.get('pid', '?')}) was lost at "
            f"{time.strftime('%H:%M:%S', time.gmtime(now_ns / 1e9))} UTC, {elapsed:.1f} s "
            f"into level {run.index} ({type(exc).__name__}); the {kept} records it finished "
            f"in that level are kept"
            + (f", {moved}" if moved else "")
            + f", and the run went on with {len(survivors)} worker(s)."
        )
        logger.warning("%s", statement)
        worker.lost = {
            "unix_ns": now_ns,
            "level": run.index,
            "after_s": elapsed,
            "records_in_level": kept,
            "reason": type(exc).__name__,
            "statement": statement,
        }

    def _stop_all(self, run: LevelRun, pending_run: dict[int, Any]) -> None:
        """Ctrl-C: stop every worker, then collect what finished (within ``STOP_TIMEOUT_S``;
        a later stop signal only says the stop is in progress: ``_signals.begin_stop``)."""
        ray = self.ray
        alive = [w for w in self.workers if w.alive and w.id in run.participants]
        for worker in alive:
            worker.actor.stop.remote()
        deadline = time.perf_counter() + STOP_TIMEOUT_S
        for wid, ref in list(pending_run.items()):
            try:
                run.reports[wid] = ray.get(ref, timeout=max(0.1, deadline - time.perf_counter()))
            except Exception as exc:  # lost while stopping: keep what was collected
                logger.warning("worker %d did not stop cleanly: %s", wid, first_line(exc))
        for worker in alive:
            try:
                reply = ray.get(worker.actor.poll.remote(None), timeout=STOP_TIMEOUT_S)
            except Exception as exc:
                logger.warning("worker %d: last records lost: %s", worker.id, first_line(exc))
                continue
            self._take(run, reply.records, reply.count)


def _discover(config: BenchmarkConfig) -> str:
    import asyncio

    return asyncio.run(discover_model(config.endpoint))
