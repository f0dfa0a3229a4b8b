"""The server's ``/metrics`` samples of a run (``server_metrics.jsonl``) and its peak memory
(``server_memory.jsonl``), summarised for the report.

``server_metrics.jsonl`` is written by :class:`open_autoglm.run.MetricSampler`: one JSON object
a line, with ``unix_ns`` and the gauges it keeps (``rss_bytes``, ``peak_rss_bytes``,
``load_peak_rss_bytes``, ``queue_depth``, ``batch_size``, ``batch_cap``,
``gpu_memory_used_bytes``, ``gpu_utilization``). ``server_memory.jsonl`` is written by
:class:`open_autoglm.run.ServerMemoryWatch`: the server's peak memory interval by interval.

Peak memory measures serving: the peak over the measured windows (each level from its first
measured send to its last measured completion: warm-up and cool-down excluded), taken from
the memory watch's intervals that start inside a window. The model's preparation and load
is reported apart (``*_load_peak_bytes``). A run without a memory watch falls back on the
``/metrics`` samples inside the windows, and says so in ``memory_peak_source``.
"""

from __future__ import annotations

import json
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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize_samples(
    path: Path,
    memory_path: Path | None = None,
    windows: list[tuple[int, int]] | None = None,
) -> ResourceSummary:
    """Summary of the samples in ``path`` and the memory watch's rows in ``memory_path``.

    ``windows`` are the measured windows (unix ns, see :func:`measured_windows`); peaks are
    taken inside them. ``None``: the whole run (no records to tell the windows by)."""
    rows: list[dict[str, Any]] = _rows(path)
    memory = _rows(memory_path) if memory_path is not None else []

    def inside(t: float) -> bool:
        return windows is None or any(a <= t <= b for a, b in windows)

    def col(key: str, window: bool = False) -> list[float]:
        return [r[key] for r in rows if key in r and (not window or inside(r.get("unix_ns", 0)))]

    def mean(key: str) -> float | None:
        values = col(key)
        return sum(values) / len(values) if values else None

    def top(values: list[float]) -> int | None:
        return int(max(values)) if values else None

    serving = [r for r in memory if r.get("phase") == "serve" and inside(r["start_unix_ns"])]
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


def _rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
