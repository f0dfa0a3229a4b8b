"""The server's ``/metrics`` samples of a run (``server_metrics.jsonl``), summarised for the report.

The file is written by :class:`open_autoglm.run.MetricSampler`: one JSON object a line, with
``unix_ns`` and the gauges it keeps (``rss_bytes``, ``peak_rss_bytes``, ``queue_depth``,
``batch_size``, ``batch_cap``, ``gpu_memory_used_bytes``, ``gpu_utilization``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class ResourceSummary:
    samples: int
    server_rss_peak_bytes: int | None
    server_rss_mean_bytes: float | None
    gpu_memory_peak_bytes: int | None
    gpu_utilization_mean: float | None
    queue_depth_max: float | None
    batch_size_max: float | None
    batch_size_mean: float | None
    batch_cap_min: float | None = None  # adaptive batching's lowest cap (None when off)
    batch_cap_last: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize_samples(path: Path) -> ResourceSummary:
    rows: list[dict[str, float]] = []
    if path.exists():
        with path.open(encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle if line.strip()]

    def col(key: str) -> list[float]:
        return [r[key] for r in rows if key in r]

    def peak(key: str) -> int | None:
        values = col(key)
        return int(max(values)) if values else None

    def mean(key: str) -> float | None:
        values = col(key)
        return sum(values) / len(values) if values else None

    rss_peaks = col("peak_rss_bytes") + col("rss_bytes")
    queue = col("queue_depth")
    batch = col("batch_size")
    return ResourceSummary(
        samples=len(rows),
        server_rss_peak_bytes=int(max(rss_peaks)) if rss_peaks else None,
        server_rss_mean_bytes=mean("rss_bytes"),
        gpu_memory_peak_bytes=peak("gpu_memory_used_bytes"),
        gpu_utilization_mean=mean("gpu_utilization"),
        queue_depth_max=max(queue) if queue else None,
        batch_size_max=max(batch) if batch else None,
        batch_size_mean=mean("batch_size"),
        batch_cap_min=min(caps) if (caps := col("batch_cap")) else None,
        batch_cap_last=caps[-1] if caps else None,
    )
