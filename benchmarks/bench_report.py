"""Time to build the whole report (stage breakdown, distributions, diagnosis: critical paths
and hotspots for E2E and TTFT, load models) of a run with many requests.

The run directory is synthetic (:class:`open_autoglm.testing.SyntheticRun`:
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

from open_autoglm.analysis import build_report
from open_autoglm.collector import write_span_store
from open_autoglm.testing import SyntheticRun


def write_run(run_dir: Path, requests: int) -> None:
    run = SyntheticRun(requests=requests, levels=(1, 2, 4, 8, 16))
    spans, events, records = run.generate()
    write_span_store(run_dir / "spans.duckdb", spans, events)
    with (run_dir / "requests.jsonl").open("w") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")
    levels = []
    for index, level in enumerate(run.levels):
        mine = [r for r in records if r["level"] == index and r["status"] == "ok"]
        e2e = sorted(r["e2e_s"] * 1e3 for r in mine)
        levels.append({
            "index": index, "label": f"concurrency={level}", "mode": "concurrency",
            "target": level, "mean_in_flight": level, "measured": len(mine),
            "succeeded": len(mine), "failed": 0, "error_rate": 0.0,
            "request_throughput": len(mine) / max(sum(e2e) / 1e3 / level, 1e-9),
            "output_token_throughput": 0.0,
            "e2e_ms": {"mean": sum(e2e) / len(e2e), "median": e2e[len(e2e) // 2]},
        })  # fmt: skip
    results = {"version": "open-autoglm.loadgen.results/1", "levels": levels,
               "records_path": str(run_dir / "requests.jsonl"), "endpoint": {}}  # fmt: skip
    (run_dir / "results.json").write_text(json.dumps(results))


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
