"""The workers of a distributed run on Ray: connecting (or starting a local Ray), one actor
per worker spread over the nodes, each worker's clock offset to the driver, shutting down.

Ray is imported only by :func:`import_ray`, when a distributed run starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from open_autoglm import __version__
from open_autoglm.loadgen._errors import ConfigError
from open_autoglm.loadgen._runner import BenchmarkConfig
from open_autoglm.loadgen._split import WorkerArrivals
from open_autoglm.loadgen._worker import LoadWorker, WorkerSetup
from open_autoglm.loadgen._workloads import RequestSpec

logger = logging.getLogger(__name__)

#: The one-line error when Ray is not installed.
RAY_MISSING = "--workers and --ray-address need Ray: pip install 'open-autoglm[ray]'"
#: Clock-offset probes per worker; the one with the shortest round trip is kept.
_CLOCK_PROBES = 7
#: How long workers may take to start (a cluster may first have to make room).
_START_TIMEOUT_S = 120.0
#: After Ctrl-C: how long the workers get to stop and hand over what finished.
STOP_TIMEOUT_S = 15.0


class DistributedError(ConfigError):
    """Ray is missing, the cluster cannot be reached or cannot place the workers, or every
    worker was lost."""


@dataclass(frozen=True, slots=True)
class DistributedConfig:
    """How to spread the load: ``workers`` processes (``None``: one per node of the
    cluster) on the Ray cluster at ``address`` (``None``: a local Ray started for the run,
    loopback only, no dashboard). ``start_margin_s`` is how far ahead of now each level's
    common start is set; ``poll_interval_s`` how often records are collected (each poll
    costs about a millisecond of CPU, driver and worker together)."""

    workers: int | None = None
    address: str | None = None
    cpus_per_worker: float = 1.0
    poll_interval_s: float = 0.1
    start_margin_s: float = 0.3

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {self.workers}")
        if self.address is None and self.workers is None:
            raise ConfigError("a local distributed run needs --workers N")
        if not self.cpus_per_worker >= 0:
            raise ConfigError("CPUs per worker must be >= 0")
        if not (self.poll_interval_s > 0 and self.start_margin_s > 0):
            raise ConfigError("the poll interval and start margin must be > 0")


def import_ray() -> Any:
    """The ``ray`` module; :class:`DistributedError` (one line) when it is not installed."""
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise DistributedError(RAY_MISSING) from None


@dataclass(slots=True)
class WorkerHandle:
    """One worker of the pool: its actor, where it runs, its clock, and the driver's
    bookkeeping of its share of the running level."""

    id: int
    actor: Any
    info: dict[str, Any] = field(default_factory=dict)
    offset_ns: int = 0  # worker clock minus driver clock
    rtt_ns: int = 0
    alive: bool = True
    lost: dict[str, Any] | None = None
    # the running level
    slots: int = 0
    granted: int = 0
    started: int = 0
    started_at_last_poll: int = 0
    arrivals: WorkerArrivals | None = None
    control: dict[str, Any] = field(default_factory=dict)


class WorkerPool:
    """The run's workers on one Ray cluster (see the module docstring)."""

    def __init__(self, ray: Any, distributed: DistributedConfig) -> None:
        self.ray = ray
        self.dist = distributed
        self.workers: list[WorkerHandle] = []
        self.started_local = False

    def connect(self) -> None:
        """``ray.init``: the cluster at the configured address, or a local Ray (loopback,
        no dashboard); nothing when this process is already connected."""
        ray = self.ray
        if ray.is_initialized():
            return
        common: dict[str, Any] = {
            "logging_level": logging.WARNING,
            "log_to_driver": False,
            "include_dashboard": False,
        }
        try:
            if self.dist.address is not None:
                ray.init(address=self.dist.address, **common)
            else:
                workers = self.dist.workers or 1
                ray.init(
                    address="local",
                    num_cpus=max(1, math.ceil(workers * self.dist.cpus_per_worker)),
                    object_store_memory=200 * 1024 * 1024,
                    **common,
                )
                self.started_local = True
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.dist.address or "a local Ray"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DistributedError(f"cannot start or reach {where}: {first}") from exc

    def start(self, config: BenchmarkConfig, specs: tuple[RequestSpec, ...], model: str) -> None:
        """One actor per worker (spread over the nodes), each asked where it runs, and its
        clock offset to this process measured."""
        ray = self.ray
        count = self.dist.workers
        if count is None:
            count = max(1, sum(1 for node in ray.nodes() if node.get("Alive")))
        remote = ray.remote(LoadWorker).options(
            num_cpus=self.dist.cpus_per_worker,
            max_concurrency=4,
            scheduling_strategy="SPREAD",
            max_restarts=0,
        )
        tokenizer_json = _tokenizer_text(config.tokenizer_path)
        for w in range(count):
            setup = WorkerSetup(
                worker_id=w,
                workers=count,
                endpoint=dataclasses.replace(config.endpoint, model=model),
                model=model,
                specs=specs,
                tracing=config.tracing,
                tokenizer_json=tokenizer_json,
            )
            self.workers.append(WorkerHandle(id=w, actor=remote.remote(setup)))
        refs = [w.actor.info.remote() for w in self.workers]
        try:
            infos = ray.get(refs, timeout=_START_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise DistributedError(
                f"the Ray cluster did not place {count} workers of "
                f"{self.dist.cpus_per_worker:g} CPU each within {_START_TIMEOUT_S:.0f} s "
                "(see `ray status`)"
            ) from None
        except ray.exceptions.RayError as exc:
            raise DistributedError(
                "a worker could not start (is open-autoglm installed on every node?): "
                + first_line(exc)
            ) from exc
        for worker, info in zip(self.workers, infos, strict=True):
            worker.info = info
            if info.get("version") != __version__:
                logger.warning(
                    "worker %d runs open-autoglm %s, the driver %s",
                    worker.id,
                    info.get("version"),
                    __version__,
                )
            self._measure_clock(worker)
            logger.info(
                "worker %d: pid %s on %s, clock offset %+.3f ms (round trip %.2f ms)",
                worker.id,
                info.get("pid"),
                info.get("host"),
                worker.offset_ns / 1e6,
                worker.rtt_ns / 1e6,
            )

    def _measure_clock(self, worker: WorkerHandle) -> None:
        """NTP-style: the worker's clock read between two of ours; the shortest round trip
        bounds the error by half of it."""
        best: tuple[int, int] | None = None
        for _ in range(_CLOCK_PROBES):
            before = time.time_ns()
            theirs = self.ray.get(worker.actor.clock.remote())
            after = time.time_ns()
            rtt = after - before
            offset = theirs - (before + after) // 2
            if best is None or rtt < best[1]:
                best = (offset, rtt)
        assert best is not None
        worker.offset_ns, worker.rtt_ns = best

    def shutdown(self) -> None:
        """Close every live worker (flushing its spans), kill every actor, and stop the
        local Ray if this pool started it."""
        ray = self.ray
        alive = [w for w in self.workers if w.alive]
        try:
            ray.get([w.actor.close.remote() for w in alive], timeout=STOP_TIMEOUT_S)
        except Exception as exc:  # a worker that cannot close is killed below all the same
            logger.warning("workers did not close cleanly: %s", first_line(exc))
        for worker in self.workers:
            with contextlib.suppress(Exception):  # already gone
                ray.kill(worker.actor)
        if self.started_local:
            ray.shutdown()


def describe_worker(worker: WorkerHandle) -> dict[str, Any]:
    lost = dict(worker.lost) if worker.lost is not None else None
    return {
        "worker": worker.id,
        "host": worker.info.get("host"),
        "pid": worker.info.get("pid"),
        "node": worker.info.get("node"),
        "version": worker.info.get("version"),
        "clock_offset_ms": worker.offset_ns / 1e6,
        "clock_rtt_ms": worker.rtt_ns / 1e6,
        "lost": lost,
    }


def _tokenizer_text(path: Path | None) -> str | None:
    if path is None:
        return None
    if path.is_dir():
        path = path / "tokenizer.json"
    return path.read_text(encoding="utf-8")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (Ray's carry whole tracebacks)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
