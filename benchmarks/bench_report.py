"""Time to build the whole report (stage breakdown, distributions, diagnosis: critical paths
and hotspots for E2E and TTFT, load models) of a run with many requests.

The run directory is synthetic (:class:`open_autoglm.analysis._synthetic.SyntheticRun`:
6 spans a request in the collector's schema, records in the load generator's shape, a planted
queue bottleneck), written once, then ``build_report`` is timed, best of ``--rounds``.
Target (issue 4): a run of 100k requests analysed in under 10 s on this 2-core machine.

    python benchmarks/bench_report.py [--requests 100000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from open_autoglm.analysis import build_report
from open_autoglm.analysis._synthetic import SyntheticRun, write_span_store
from open_autoglm.loadgen import (
    RESULTS_VERSION,
    BenchmarkResults,
    ClientHealth,
    EndpointSummary,
    Level,
    ProfileConfig,
    RequestRecord,
    WorkloadConfig,
)
from open_autoglm.loadgen._results import summarize_level


def write_run(run_dir: Path, requests: int) -> None:
    run = SyntheticRun(requests=requests, levels=(1, 2, 4, 8, 16))
    spans, events, records = run.generate()
    write_span_store(run_dir / "spans.duckdb", spans, events)
    with (run_dir / "requests.jsonl").open("w") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")
    health = ClientHealth(None, None, None, None, None, None, 0.0, False, "not measured")
    levels = []
    for index, level in enumerate(run.levels):
        mine = [_record(r, run.started_unix_ns) for r in records if r["level"] == index]
        spec = Level(mode="concurrency", value=level, requests=len(mine))
        levels.append(summarize_level(index, spec, mine, run.started_unix_ns, None, health))
    BenchmarkResults(
        version=RESULTS_VERSION,
        tool_version="bench",
        started_unix_ns=run.started_unix_ns,
        finished_unix_ns=run.started_unix_ns,
        interrupted=False,
        endpoint=EndpointSummary(
            "http://127.0.0.1/v1", "chat", run.model, False, 600.0, [], {}, False
        ),
        workload=WorkloadConfig(),
        profile=ProfileConfig(kind="step", step_levels=tuple(map(float, run.levels)), requests=1),
        slo=None,
        seed=0,
        records_path=str(run_dir / "requests.jsonl"),
        levels=levels,
    ).write(run_dir / "results.json")


def _record(r: dict[str, Any], start_ns: int) -> RequestRecord:
    sent = (r["sent_unix_ns"] - start_ns) / 1e9
    return RequestRecord(
        index=r["index"], level=r["level"], phase="measure", scheduled_s=sent, sched_lag_s=0.0,
        queue_s=0.0, sent_s=sent, sent_unix_ns=r["sent_unix_ns"], ttft_s=r["ttft_s"],
        e2e_s=r["e2e_s"], done_s=sent + r["e2e_s"], output_tokens=r["output_tokens"],
        input_tokens=r["input_tokens"], trace_id=r["trace_id"],
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        start = time.perf_counter()
        write_run(run_dir, args.requests)
        written = time.perf_counter() - start
        best = float("inf")
        for _ in range(args.rounds):
            start = time.perf_counter()
            report = build_report(run_dir)
            best = min(best, time.perf_counter() - start)
    assert report.stages is not None
    assert report.diagnosis is not None
    print(
        f"{args.requests:,} requests ({6 * args.requests:,} spans), 5 levels; load average "
        f"{os.getloadavg()[0]:.1f}; synthetic run written in {written:.1f} s"
    )
    print()
    print("| requests | build_report (best) | target |")
    print("|---|---|---|")
    print(f"| {args.requests:,} | {best:.2f} s | < 10 s |")
    print()
    print("top finding:", report.diagnosis.summary[0] if report.diagnosis.summary else "none")


if __name__ == "__main__":
    main()
