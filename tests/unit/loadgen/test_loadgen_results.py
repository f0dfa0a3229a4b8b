"""Statistics, goodput, error rates and the client-health verdict on known records."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from open_autoglm.loadgen import (
    RESULTS_VERSION,
    BenchmarkResults,
    Level,
    RequestRecord,
    Stats,
    assess,
)
from open_autoglm.loadgen._results import summarize_level
from open_autoglm.objectives import parse_goodput


def record(i: int, ttft: float, e2e: float, out: int = 5, status: str = "ok") -> RequestRecord:
    r = RequestRecord(index=i, level=0, phase="measure", scheduled_s=i * 0.1, sched_lag_s=0.0,
                      queue_s=0.0, sent_s=i * 0.1, sent_unix_ns=0)  # fmt: skip
    if status == "ok":
        r.ttft_s, r.e2e_s, r.output_tokens, r.input_tokens = ttft, e2e, out, 10
        r.tpot_s = (e2e - ttft) / (out - 1)
        r.chunk_offsets_s = [ttft + k * (e2e - ttft) / (out - 1) for k in range(out)]
    else:
        r.status, r.error_type = "error", status  # type: ignore[assignment]
    r.done_s = r.sent_s + e2e
    return r


def test_percentiles_interpolate_linearly() -> None:
    stats = Stats.of_seconds([0.001, 0.002, 0.003, 0.004])
    assert stats.median == pytest.approx(2.5)
    assert stats.p90 == pytest.approx(3.7)
    assert stats.max == pytest.approx(4.0)
    assert Stats.of_seconds([]).count == 0


def test_level_summary() -> None:
    records = [record(0, 0.1, 0.5), record(1, 0.3, 0.7), record(2, 0.1, 0.1, status="500"),
               record(3, 0.1, 0.1, status="ReadTimeout")]  # fmt: skip
    warm = record(4, 9.0, 9.5)
    warm.phase = "warmup"
    health = assess([0.0001] * 4, [0.0005] * 10, 0.2)
    level = Level(mode="concurrency", value=2, requests=5)
    result = summarize_level(0, level, [*records, warm], 0, parse_goodput("ttft<=200ms"), health)
    assert (result.requests, result.measured, result.succeeded, result.failed) == (5, 4, 2, 2)
    assert result.errors == {"500": 1, "ReadTimeout": 1}
    assert result.error_rate == 0.5
    # duration: first send (0.0) to last completion (0.1 + 0.7 = 0.8 s)
    assert result.duration_s == pytest.approx(0.8)
    assert result.request_throughput == pytest.approx(2 / 0.8)
    assert result.output_token_throughput == pytest.approx(10 / 0.8)
    assert result.goodput == pytest.approx(1 / 0.8)  # only the first meets TTFT <= 200 ms
    assert result.ttft_ms.count == 2
    assert result.itl_ms.count == 8
    assert result.tpot_ms.mean == pytest.approx(100.0)


def test_health_verdict_is_plain() -> None:
    ok = assess([0.0001] * 100, [0.001] * 100, 0.3)
    assert not ok.client_bound
    assert ok.statement.startswith("The client kept up")
    late = assess([0.004] * 100, [0.001] * 100, 1.0)
    assert late.client_bound
    assert "The client was the bottleneck" in late.statement
    assert "4.00 ms late" in late.statement
    # the loop stalls while the client works hard: the client is the limit
    stalled = assess([0.0001] * 100, [0.03] * 100, 0.95)
    assert stalled.client_bound
    assert not stalled.machine_busy
    # the loop stalls while the client idles: other processes held the CPU
    busy = assess([0.0001] * 100, [0.03] * 100, 0.05)
    assert not busy.client_bound
    assert busy.machine_busy
    assert busy.statement.startswith("The machine was busy, not the client")
    # seconds late on a fifth of a core: starved of CPU by other processes, not client-bound
    starved = assess([2.0] * 100, [0.5] * 100, 0.17)
    assert starved.machine_busy
    assert not starved.client_bound
    # one stall: the median request left on time, 5 % went out 200 ms late in a burst
    stall = [0.0001] * 95 + [0.2] * 5
    stalled_idle = assess(stall, [0.001] * 99 + [0.2], 0.2)
    assert stalled_idle.machine_busy
    assert "p99 200.00 ms" in stalled_idle.statement
    stalled_busy = assess(stall, [0.001] * 99 + [0.2], 0.95)
    assert stalled_busy.client_bound
    # a tail inside the limit is no verdict
    assert assess([0.0001] * 99 + [0.2], [0.001] * 100, 0.3).statement.startswith(
        "The client kept up"
    )


def test_results_json_never_holds_nan_or_infinity(tmp_path: Path) -> None:
    health = assess([0.0001] * 4, [0.0005] * 10, 0.2)
    level = Level(mode="concurrency", value=2, requests=2)
    summary = summarize_level(0, level, [record(0, 0.1, 0.5), record(1, 0.2, 0.6)], 0, None,
                              health)  # fmt: skip
    broken = dataclasses.replace(summary, send_rate=float("inf"), goodput=float("nan"))
    results = BenchmarkResults(version=RESULTS_VERSION, tool_version="t", started_unix_ns=0,
                               finished_unix_ns=1, interrupted=False, endpoint={}, workload={},
                               profile={}, slo=None, seed=0, records_path=None,
                               levels=[broken])  # fmt: skip
    results.write(tmp_path / "results.json")

    def refuse(name: str) -> None:
        raise ValueError(name)

    doc = json.loads((tmp_path / "results.json").read_text(), parse_constant=refuse)
    assert doc["levels"][0]["send_rate"] is None
    assert doc["levels"][0]["goodput"] is None
    assert doc["null_reasons"] == {"levels[0].send_rate": "not a finite number: inf",
                                   "levels[0].goodput": "not a finite number: nan"}  # fmt: skip
    assert doc["tokenizer"] == "simple"
    assert doc["levels"][0]["answer_ttft_ms"]["count"] == 0
    assert doc["levels"][0]["answer_ttft_ms"]["median"] is None
