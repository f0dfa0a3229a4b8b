"""The server's ``/metrics`` samples of a run (``server_metrics.jsonl``), summarised for the report.

The file is written by :class:`open_autoglm.run.MetricSampler`: one JSON object a line, with
``unix_ns`` and the gauges it keeps (``rss_bytes``, ``peak_rss_bytes``, ``queue_depth``,
``batch_size``, ``batch_cap``, ``kv_cache_usage``, ``preemptions_total``,
``gpu_memory_used_bytes``, ``gpu_utilization``), from our server's metrics or those of a server
we did not start (vLLM, SGLang, TGI; the sampler names the families).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
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
    queue_depth_mean: float | None = None
    #: KV-cache usage, a fraction (1 = full), where the server exposes it (vLLM, SGLang)
    kv_cache_usage_max: float | None = None
    kv_cache_usage_mean: float | None = None
    #: preemptions during the run (growth of the server's counter), where exposed (vLLM)
    preemptions: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def read_samples(path: Path) -> list[dict[str, float]]:
    """The samples in ``path`` (none when it is missing)."""
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@dataclass(frozen=True, slots=True)
class LevelResources:
    """The server's gauges during one level (the samples in its window); None: not exposed."""

    level: int  # the level's index
    samples: int
    queue_depth_mean: float | None = None
    queue_depth_max: float | None = None
    batch_size_mean: float | None = None
    kv_cache_usage_max: float | None = None  # a fraction, 1 = full
    preemptions: int | None = None  # growth of the server's counter during the level


def resources_by_level(path: Path, levels: Sequence[Mapping[str, Any]]) -> list[LevelResources]:
    """The server's gauges during each level (its window: ``started_unix_ns`` plus
    ``duration_s``), for the levels that have samples."""
    rows = [r for r in read_samples(path) if "unix_ns" in r]
    out = []
    for i, level in enumerate(levels):
        start = level.get("started_unix_ns")
        duration = level.get("duration_s")
        if not isinstance(start, int | float) or not isinstance(duration, int | float):
            continue
        end = start + duration * 1e9
        inside = [r for r in rows if start <= r["unix_ns"] <= end]
        if not inside:
            continue

        def col(key: str, inside: list[dict[str, float]] = inside) -> list[float]:
            return [r[key] for r in inside if key in r]

        queue, batch, kv, pre = (col(k) for k in (
            "queue_depth", "batch_size", "kv_cache_usage", "preemptions_total"))  # fmt: skip
        out.append(
            LevelResources(
                level=int(level.get("index", i)),
                samples=len(inside),
                queue_depth_mean=sum(queue) / len(queue) if queue else None,
                queue_depth_max=max(queue) if queue else None,
                batch_size_mean=sum(batch) / len(batch) if batch else None,
                kv_cache_usage_max=max(kv) if kv else None,
                preemptions=int(max(pre) - min(pre)) if pre else None,
            )
        )
    return out


def summarize_samples(path: Path) -> ResourceSummary:
    rows = read_samples(path)

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
        queue_depth_mean=mean("queue_depth"),
        kv_cache_usage_max=max(kv) if (kv := col("kv_cache_usage")) else None,
        kv_cache_usage_mean=mean("kv_cache_usage"),
        preemptions=int(max(pre) - min(pre)) if (pre := col("preemptions_total")) else None,
    )
