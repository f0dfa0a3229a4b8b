"""The driver's per-level verdict over its workers' health (no Ray: a level's records and
reports as the workers would have sent them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from open_autoglm.loadgen import (
    BenchmarkConfig,
    EndpointConfig,
    Level,
    NullProgress,
    ProfileConfig,
)
from open_autoglm.loadgen._distributed import _Driver
from open_autoglm.loadgen._level_merge import LevelRun
from open_autoglm.loadgen._records import RequestRecord
from open_autoglm.loadgen._worker import LevelReport
from open_autoglm.loadgen._worker_pool import DistributedConfig, WorkerHandle


def level_run(late_s: dict[int, float], cpu: dict[int, float]) -> LevelRun:
    level = Level(mode="rate", value=200, requests=400)
    run = LevelRun(index=0, level=level, start_ns=1_000_000_000_000, participants=[0, 1])
    for i in range(400):
        worker = i % 2
        sent = i * 0.005 + late_s[worker]
        run.records.append(
            RequestRecord(index=i, level=0, phase="measure", scheduled_s=i * 0.005,
                          sched_lag_s=late_s[worker], queue_s=0.0, sent_s=sent,
                          sent_unix_ns=run.start_ns + int(sent * 1e9), ttft_s=0.002,
                          e2e_s=0.004, done_s=sent + 0.004, output_tokens=4, worker=worker)
        )  # fmt: skip
    for worker in (0, 1):
        run.reports[worker] = LevelReport(
            index=0, target_unix_ns=run.start_ns + 7, started_unix_ns=run.start_ns + 7 + worker,
            received_unix_ns=run.start_ns - 200_000_000, loop_lags_s=[0.0002] * 100,
            cpu_cores=cpu[worker], cpu_s=cpu[worker] * 2, wall_s=2.0, started=200,
            in_flight_max=3, interrupted=False,
        )  # fmt: skip
    return run


def driver(tmp_path: Path) -> _Driver:
    config = BenchmarkConfig(
        endpoint=EndpointConfig(url="http://127.0.0.1:9"),
        profile=ProfileConfig(kind="rate", rate=200, requests=400),
        output_path=tmp_path / "results.json",
    )
    made = _Driver(None, config, DistributedConfig(workers=2), NullProgress())
    made.workers.extend(
        [WorkerHandle(id=0, actor=None, offset_ns=7), WorkerHandle(id=1, actor=None)]
    )
    return made


def test_a_worker_that_could_not_keep_up_is_named_with_its_numbers(tmp_path: Path) -> None:
    made = driver(tmp_path)
    made._finish_level(level_run({0: 0.0002, 1: 0.004}, {0: 0.3, 1: 0.97}))
    note = made.level_notes[0]
    assert note["bottleneck"] == (
        "Worker 1 was the client bottleneck at rate=200/s: requests went out 4.00 ms late "
        "(p50), its event loop lagged 0.20 ms (p99) on 97% of a core; add workers "
        "(--workers 3) or machines."
    )
    level = made.results[0]
    assert level.health.client_bound
    assert level.health.statement == note["bottleneck"]
    by_worker = {w["worker"]: w for w in note["workers"]}
    assert not by_worker[0]["health"]["client_bound"]
    assert by_worker[1]["health"]["client_bound"]
    assert by_worker[1]["in_flight_max"] == 3
    # starts on the driver's clock: worker 0's clock runs 7 ns ahead, so it started at the
    # instant itself and worker 1 8 ns after
    assert note["start_skew_ms"] == pytest.approx(8e-6)
    assert by_worker[0]["plan_lead_ms"] == pytest.approx(200.0, abs=1e-3)


def test_workers_that_kept_up_give_no_verdict(tmp_path: Path) -> None:
    made = driver(tmp_path)
    made._finish_level(level_run({0: 0.0002, 1: 0.0003}, {0: 0.3, 1: 0.35}))
    assert made.level_notes[0]["bottleneck"] is None
    assert not made.results[0].health.client_bound
    assert made.results[0].requests == 400
