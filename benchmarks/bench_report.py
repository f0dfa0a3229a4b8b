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
import os
import tempfile
import time
from pathlib import Path

from open_autoglm.analysis import build_report
from open_autoglm.testing import SyntheticRun


def write_run(run_dir: Path, requests: int) -> None:
    SyntheticRun(requests=requests, levels=(1, 2, 4, 8, 16)).write(run_dir)


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
