"""Critical path + hotspots over a synthetic run, against a bare DuckDB scan of the same spans.

The run is generated into a span store file with the collector's schema (6 spans a request:
client, server, tokenize, queue, prefill, decode; a slow queue planted above depth 12), then
timed, best of ``--rounds``:

* scan: DuckDB reading every column the analysis reads, once (the floor);
* critical path: :func:`critical_paths` over every trace (E2E horizon), self time included;
* attributes: :func:`span_attributes` (queue depth, batch size, prompt tokens, in-flight);
* hotspots: :func:`find_hotspots` on the P99 cohort (Mann-Whitney over all columns).

    python benchmarks/bench_analysis.py [--requests 100000 200000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from open_autoglm.analysis._critical_path import critical_paths
from open_autoglm.analysis._hotspots import HotspotConfig, find_hotspots, span_attributes
from open_autoglm.collector import SpanStore
from open_autoglm.testing import SyntheticRun

SCAN_SQL = """
SELECT count(DISTINCT trace_id), max(span_id), max(parent_span_id), count(DISTINCT name),
       sum(start_unix_ns), sum(end_unix_ns), max(length(CAST(attributes AS VARCHAR)))
FROM spans
"""


def best(rounds: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def bench(requests: int, rounds: int, directory: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    store = SyntheticRun(requests=requests, seed=7).write(directory / f"run{requests}")
    generate_s = time.perf_counter() - t0
    span_store = SpanStore(store)
    con = span_store.connection
    try:
        spans = int(con.execute("SELECT count(*) FROM spans").fetchone()[0])  # type: ignore[index]
        scan_s, _ = best(rounds, lambda: con.execute(SCAN_SQL).fetchall())
        cp_s, paths = best(rounds, lambda: critical_paths(con))
        attr_s, attributes = best(rounds, lambda: span_attributes(con, paths))
        config = HotspotConfig()
        hot_s, report = best(rounds, lambda: find_hotspots(paths, None, attributes, config))
    finally:
        span_store.close()
    total = cp_s + attr_s + hot_s
    return {
        "requests": requests,
        "spans": spans,
        "generate_s": generate_s,
        "scan_s": scan_s,
        "critical_path_s": cp_s,
        "attributes_s": attr_s,
        "hotspots_s": hot_s,
        "total_s": total,
        "ratio_to_scan": total / scan_s,
        "top": report.summary[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, nargs="+", default=[100_000, 200_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [bench(n, args.rounds, Path(tmp)) for n in args.requests]
    header = ("requests", "spans", "scan s", "crit.path s", "attrs s", "hotspots s", "total s",
              "total/scan")  # fmt: skip
    print(" | ".join(header))
    print("|".join("---" for _ in header))
    for r in results:
        print(
            f"{r['requests']:,} | {r['spans']:,} | {r['scan_s']:.3f} | {r['critical_path_s']:.3f} "
            f"| {r['attributes_s']:.3f} | {r['hotspots_s']:.3f} | {r['total_s']:.3f} "
            f"| {r['ratio_to_scan']:.1f}×"
        )
    for r in results:
        print(f"{r['requests']:,} requests, top finding: {r['top']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
