"""The distributed run's worker in-process (no Ray) against ``serve --backend sim``, and the
single-process run that must not import Ray."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest

from open_autoglm.loadgen import (
    EndpointConfig,
    LengthDistribution,
    Level,
    WorkloadConfig,
    build_requests,
    load_prompts,
)
from open_autoglm.loadgen._split import WorkerArrivals
from open_autoglm.loadgen._tokens import SimpleTokenCounter
from open_autoglm.loadgen._worker import Control, LevelPlan, LevelReport, LoadWorker, WorkerSetup
from open_autoglm.testing import ServerProcess


@pytest.fixture
def worker(zero_cost_server: ServerProcess) -> Iterator[LoadWorker]:
    endpoint = EndpointConfig(url=zero_cost_server.url, model="sim-llm", ignore_eos=True)
    workload = WorkloadConfig(input_len=LengthDistribution(8), output_len=LengthDistribution(4))
    specs = build_requests(load_prompts(workload, SimpleTokenCounter()), endpoint, "sim-llm")
    setup = WorkerSetup(
        worker_id=1, workers=2, endpoint=endpoint, model="sim-llm", specs=tuple(specs)
    )
    loaded = LoadWorker(setup)
    try:
        yield loaded
    finally:
        loaded.close()


def run_in_thread(
    worker: LoadWorker, plan: LevelPlan
) -> tuple[threading.Thread, list[LevelReport]]:
    out: list[LevelReport] = []
    thread = threading.Thread(target=lambda: out.append(worker.run_level(plan)))
    thread.start()
    return thread, out


def records_of(polls: list[bytes]) -> list[dict[str, object]]:
    return [orjson.loads(line) for blob in polls for line in blob.splitlines()]


def test_closed_loop_waits_for_tickets_and_takes_new_slots(worker: LoadWorker) -> None:
    level = Level(mode="concurrency", value=2, requests=40)
    plan = LevelPlan(index=0, level=level, start_unix_ns=time.time_ns() + 50_000_000,
                     cooldown_from_s=None, slots=2, tickets=10, index_base=100)  # fmt: skip
    thread, reports = run_in_thread(worker, plan)
    polls: list[bytes] = []
    deadline = time.monotonic() + 20
    while True:  # the ten tickets it was given, then it waits
        reply = worker.poll()
        polls.append(reply.records)
        if reply.started >= 10:
            break
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.2)
    reply = worker.poll()
    polls.append(reply.records)
    assert reply.started == 10
    assert reply.level == 0
    reply = worker.poll(Control(grant=30, close=True, slots=4))
    polls.append(reply.records)
    thread.join(timeout=20)
    polls.append(worker.poll().records)
    records = records_of(polls)
    assert len(records) == 40
    assert reports[0].started == 40
    assert reports[0].in_flight_max == 4  # the new slots ran
    # worker 1 of 2: indices 100 + 1 + 2k, each once
    assert sorted(r["index"] for r in records) == [101 + 2 * k for k in range(40)]
    assert {r["worker"] for r in records} == {1}


def test_open_loop_sends_its_schedule_and_arrivals_taken_over(worker: LoadWorker) -> None:
    level = Level(mode="rate", value=100, duration_s=1.0)
    own = WorkerArrivals(np.linspace(0, 0.5, 20), np.arange(0, 40, 2, dtype=np.int64))
    start = time.time_ns() + 100_000_000
    plan = LevelPlan(index=3, level=level, start_unix_ns=start, cooldown_from_s=None,
                     arrivals=own)  # fmt: skip
    thread, reports = run_in_thread(worker, plan)
    time.sleep(0.2)
    extra = WorkerArrivals(np.linspace(0.6, 0.8, 10), np.arange(1, 21, 2, dtype=np.int64))
    first = worker.poll(Control(arrivals=extra))
    assert first.accepted_arrivals == 10
    thread.join(timeout=20)
    records = records_of([first.records, worker.poll().records])
    assert sorted(r["index"] for r in records) == sorted([*range(0, 40, 2), *range(1, 21, 2)])
    assert all(r["status"] == "ok" and r["level"] == 3 for r in records)
    # sent on schedule from the common start (the offsets are from that instant); loose
    # bounds: this is a shared two-core machine, the tight ones are in the Ray tests
    lags = [r["sent_s"] - r["scheduled_s"] for r in records]
    assert float(np.median(lags)) < 0.02
    assert abs(reports[0].started_unix_ns - start) < 20_000_000


def test_stop_records_in_flight_requests_as_cancelled(
    sim_server: ServerProcess, tmp_path: Path
) -> None:
    endpoint = EndpointConfig(url=sim_server.url, model="sim-llm", ignore_eos=True)
    workload = WorkloadConfig(input_len=LengthDistribution(8), output_len=LengthDistribution(400))
    specs = build_requests(load_prompts(workload, SimpleTokenCounter()), endpoint, "sim-llm")
    worker = LoadWorker(WorkerSetup(0, 1, endpoint, "sim-llm", tuple(specs)))
    try:
        level = Level(mode="concurrency", value=3, duration_s=30)
        plan = LevelPlan(index=0, level=level, start_unix_ns=time.time_ns(),
                         cooldown_from_s=None, slots=3)  # fmt: skip
        thread, reports = run_in_thread(worker, plan)
        while worker.poll().in_flight < 3:
            time.sleep(0.01)
        worker.stop()
        thread.join(timeout=10)
        records = records_of([worker.poll().records])
    finally:
        worker.close()
    assert reports[0].interrupted
    assert [r["status"] for r in records] == ["cancelled"] * 3


def test_a_single_process_run_does_not_import_ray(
    zero_cost_server: ServerProcess, tmp_path: Path
) -> None:
    code = (
        "import sys\n"
        "from open_autoglm.cli import main\n"
        f"rc = main(['benchmark', '--url', {zero_cost_server.url!r}, '--requests', '5', "
        f"'--quiet', '--output', {str(tmp_path / 'r.json')!r}])\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
        "sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "5 ok" in proc.stdout
