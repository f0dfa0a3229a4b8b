"""One level of a distributed run put together from its workers: the level's results as a
single-process run gives them, each worker's health, the start skew, and a one-line verdict
when a worker was the bottleneck."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any

from open_autoglm.loadgen._health import ClientHealth, assess
from open_autoglm.loadgen._profiles import Level
from open_autoglm.loadgen._records import RequestRecord
from open_autoglm.loadgen._results import LevelResult, summarize_level
from open_autoglm.loadgen._worker import LevelReport
from open_autoglm.loadgen._worker_pool import WorkerHandle
from open_autoglm.objectives import Goodput


@dataclass(slots=True)
class LevelRun:
    """One level of a distributed run as the driver follows it."""

    index: int
    level: Level
    start_ns: int  # driver clock
    records: list[RequestRecord] = field(default_factory=list)
    reports: dict[int, LevelReport] = field(default_factory=dict)
    pool: int = -1  # closed loop: tickets not yet granted (-1: no count)
    closed_sent: bool = False
    redealt: int = 0
    driver_cpu_s: float = 0.0  # this process, while the level ran (records in, writes)
    participants: list[int] = field(default_factory=list)


def merge_level(
    run: LevelRun, workers: list[WorkerHandle], slo: Goodput | None
) -> tuple[LevelResult, dict[str, Any]]:
    """The level's results (health: the busiest worker's, or the verdict naming the workers
    that could not keep up) and its ``distributed.levels[i]`` entry."""
    level = run.level
    measured = [r for r in run.records if r.phase == "measure" and r.status != "cancelled"]
    per_worker: list[dict[str, Any]] = []
    healths: dict[int, ClientHealth] = {}
    starts: dict[int, int] = {}  # when each worker started, driver clock, ns
    for wid in run.participants:
        worker = workers[wid]
        report = run.reports.get(wid)
        mine = [r for r in measured if r.worker == wid]
        health = assess(
            [r.sched_lag_s for r in mine],
            report.loop_lags_s if report is not None else [],
            report.cpu_cores if report is not None else 0.0,
        )
        healths[wid] = health
        entry: dict[str, Any] = {
            "worker": wid,
            "requests": sum(1 for r in run.records if r.worker == wid),
            "measured": len(mine),
            "lost": worker.lost is not None and worker.lost["level"] == run.index,
            "mean_in_flight": mean_in_flight(mine),
            "health": asdict(health),
        }
        if report is not None:
            late_ms = (report.started_unix_ns - report.target_unix_ns) / 1e6
            starts[wid] = report.started_unix_ns - worker.offset_ns
            entry.update(
                start_late_ms=late_ms,
                plan_lead_ms=(report.target_unix_ns - report.received_unix_ns) / 1e6,
                in_flight_max=report.in_flight_max,
                cpu_s=report.cpu_s,
                wall_s=report.wall_s,
                started=report.started,
            )
        per_worker.append(entry)
    lags = [lag for rep in run.reports.values() for lag in rep.loop_lags_s]
    cpu = max((rep.cpu_cores for rep in run.reports.values()), default=0.0)
    health = assess([r.sched_lag_s for r in measured], lags, cpu)
    bound = [wid for wid, h in healths.items() if h.client_bound]
    bottleneck = None
    if bound:
        worst = healths[bound[0]]
        who = ("Worker " if len(bound) == 1 else "Workers ") + ", ".join(map(str, bound))
        bottleneck = (
            f"{who} was the client bottleneck at {level.label}: requests went out "
            f"{worst.sched_lag_p50_ms or 0:.2f} ms late (p50), its event loop lagged "
            f"{worst.loop_lag_p99_ms or 0:.2f} ms (p99) on {worst.cpu_cores:.0%} of a core; "
            f"add workers (--workers {len(workers) + len(bound)}) or machines."
        )
        health = dataclasses.replace(
            health, client_bound=True, machine_busy=False, statement=bottleneck
        )
    result = summarize_level(run.index, level, run.records, run.start_ns, slo, health)
    skew = (max(starts.values()) - min(starts.values())) / 1e6 if starts else 0.0
    note = {
        "index": run.index,
        "label": level.label,
        "start_unix_ns": run.start_ns,
        "start_skew_ms": skew,
        "redealt_arrivals": run.redealt,
        "driver_cpu_s": run.driver_cpu_s,
        "workers": per_worker,
        "bottleneck": bottleneck,
    }
    return result, note


def mean_in_flight(records: list[RequestRecord]) -> float:
    """Time-averaged requests in flight (Little's law), as in the level results."""
    if not records:
        return 0.0
    first = min(r.sent_s for r in records)
    last = max(r.done_s or r.sent_s for r in records)
    busy = sum((r.done_s or r.sent_s) - r.sent_s for r in records)
    return busy / (last - first) if last > first else 0.0
