"""The server's ``/metrics`` samples of a run (``server_metrics.jsonl``) and its peak memory
(``server_memory.jsonl``), summarised for the report.

``server_metrics.jsonl`` is written by :class:`open_autoglm.run.MetricSampler`: one JSON object
a line, with ``unix_ns`` and the gauges it keeps (``rss_bytes``, ``peak_rss_bytes``,
``load_peak_rss_bytes``, ``queue_depth``, ``batch_size``, ``batch_cap``, ``kv_cache_usage``,
``preemptions_total``, ``gpu_memory_used_bytes``, ``gpu_utilization``), from our server's
metrics or those of a server we did not start (vLLM, SGLang, TGI; the sampler names the
families). ``server_memory.jsonl`` is written by :class:`open_autoglm.run.ServerMemoryWatch`:
the server's peak memory interval by interval.

Peak memory measures serving: the peak over the measured windows (each level from its first
measured send to its last measured completion: warm-up and cool-down excluded), taken from
the memory watch's intervals that start inside a window (that overlap one, when a window
is shorter than an interval). The model's preparation and load
is reported apart (``*_load_peak_bytes``). A run without a memory watch falls back on the
``/metrics`` samples inside the windows, and says so in ``memory_peak_source``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: How the serving peak was measured, by the memory watch's ``method`` (or the fallback).
MEMORY_SOURCES = {
    "kernel": "kernel high-water mark (VmHWM), per 0.1 s interval",
    "sampled": "RSS sampled every 10 ms",
    "scrapes": "/metrics scrapes every 0.5 s",
}


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
    #: Peak RSS while the server prepared and loaded its model (before it answered).
    server_rss_load_peak_bytes: int | None = None
    gpu_memory_load_peak_bytes: int | None = None
    #: How ``server_rss_peak_bytes`` was measured (see :data:`MEMORY_SOURCES`).
    memory_peak_source: str | None = None
    queue_depth_mean: float | None = None
    #: KV-cache usage, a fraction (1 = full), where the server exposes it (vLLM, SGLang)
    kv_cache_usage_max: float | None = None
    kv_cache_usage_mean: float | None = None
    #: preemptions during the run (growth of the server's counter), where exposed (vLLM)
    preemptions: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def read_samples(path: Path) -> list[dict[str, Any]]:
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


def summarize_samples(
    path: Path,
    memory_path: Path | None = None,
    windows: list[tuple[int, int]] | None = None,
) -> ResourceSummary:
    """Summary of the samples in ``path`` and the memory watch's rows in ``memory_path``.

    ``windows`` are the measured windows (unix ns, see :func:`measured_windows`); peaks are
    taken inside them. ``None``: the whole run (no records to tell the windows by)."""
    rows: list[dict[str, Any]] = read_samples(path)
    memory = read_samples(memory_path) if memory_path is not None else []

    def inside(t: float) -> bool:
        return windows is None or any(a <= t <= b for a, b in windows)

    def col(key: str, window: bool = False) -> list[float]:
        return [r[key] for r in rows if key in r and (not window or inside(r.get("unix_ns", 0)))]

    def mean(key: str) -> float | None:
        values = col(key)
        return sum(values) / len(values) if values else None

    def top(values: list[float]) -> int | None:
        return int(max(values)) if values else None

    def overlaps(r: dict[str, Any]) -> bool:  # an interval of the watch meets a window
        start, end = r["start_unix_ns"], r.get("end_unix_ns", r["start_unix_ns"])
        return windows is None or any(start <= b and end >= a for a, b in windows)

    serve = [r for r in memory if r.get("phase") == "serve"]
    # intervals that start inside a window; a window shorter than one interval (a fast run)
    # has none, and then the intervals that overlap it
    serving = [r for r in serve if inside(r["start_unix_ns"])] or [r for r in serve if overlaps(r)]
    load = [r for r in memory if r.get("phase") == "load"]
    if serving:
        rss_peak = top([r["rss_peak_bytes"] for r in serving])
        gpu_peak = top(
            [r["gpu_memory_peak_bytes"] for r in serving if "gpu_memory_peak_bytes" in r]
        )
        source = MEMORY_SOURCES.get(serving[0].get("method", ""))
    else:  # no memory watch: the scrapes inside the windows (never the lifetime mark)
        rss_peak = top(col("rss_bytes", window=True))
        gpu_peak = top(col("gpu_memory_used_bytes", window=True))
        source = MEMORY_SOURCES["scrapes"] if rss_peak is not None else None
    load_rss = [r["rss_peak_bytes"] for r in load] + col("load_peak_rss_bytes")
    load_gpu = [r["gpu_memory_peak_bytes"] for r in load if "gpu_memory_peak_bytes" in r]
    queue = col("queue_depth")
    batch = col("batch_size")
    return ResourceSummary(
        samples=len(rows),
        server_rss_peak_bytes=rss_peak,
        server_rss_mean_bytes=mean("rss_bytes"),
        gpu_memory_peak_bytes=gpu_peak,
        gpu_utilization_mean=mean("gpu_utilization"),
        queue_depth_max=max(queue) if queue else None,
        batch_size_max=max(batch) if batch else None,
        batch_size_mean=mean("batch_size"),
        batch_cap_min=min(caps) if (caps := col("batch_cap")) else None,
        batch_cap_last=caps[-1] if caps else None,
        server_rss_load_peak_bytes=top(load_rss),
        gpu_memory_load_peak_bytes=top(load_gpu),
        memory_peak_source=source,
        queue_depth_mean=mean("queue_depth"),
        kv_cache_usage_max=max(kv) if (kv := col("kv_cache_usage")) else None,
        kv_cache_usage_mean=mean("kv_cache_usage"),
        preemptions=int(max(pre) - min(pre)) if (pre := col("preemptions_total")) else None,
    )


def measured_windows(records_path: Path) -> list[tuple[int, int]] | None:
    """Each level's measured window in unix ns: its first measured send to its last measured
    completion (``requests.jsonl``); None without records."""
    if not records_path.exists():
        return None
    spans: dict[int, tuple[int, int]] = {}
    with records_path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            r = json.loads(line)
            if r.get("phase", "measure") != "measure" or r.get("sent_unix_ns") is None:
                continue
            start = int(r["sent_unix_ns"])
            took = (r.get("done_s") or 0.0) - (r.get("sent_s") or 0.0)
            end = start + int(max(took, 0.0) * 1e9)
            level = int(r.get("level", 0))
            a, b = spans.get(level, (start, end))
            spans[level] = (min(a, start), max(b, end))
    return sorted(spans.values()) or None
