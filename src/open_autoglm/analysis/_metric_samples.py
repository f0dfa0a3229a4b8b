"""Samples of the server's ``/metrics`` during a run: memory, queue depth, batch size, KV-cache
usage, preemptions, GPU (from our server's families or a known server's, see
:mod:`._server_families`)."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from open_autoglm.analysis._server_families import parse_sample

logger = logging.getLogger(__name__)


class MetricSampler:
    """Scrapes ``url`` every ``interval_s`` in a thread, appending each sample to a JSONL file.

    A scrape that fails is counted and skipped: the run goes on.
    """

    def __init__(
        self, url: str, path: Path, interval_s: float = 0.5, *, metrics_url: str | None = None
    ) -> None:
        """``url``: the server's base URL (scraped at ``url/metrics``); ``metrics_url``: the
        metrics page itself, when it is elsewhere."""
        self._url = metrics_url or url.rstrip("/") + "/metrics"
        self._path = path
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="metric-sampler", daemon=True)
        self.samples = 0
        self.failures = 0

    def _loop(self) -> None:
        with httpx.Client(timeout=5.0) as client, self._path.open("a", encoding="utf-8") as out:
            while True:
                try:
                    text = client.get(self._url).text
                    sample: dict[str, Any] = {"unix_ns": time.time_ns(), **parse_sample(text)}
                    out.write(json.dumps(sample) + "\n")
                    out.flush()
                    self.samples += 1
                except (httpx.HTTPError, ValueError) as exc:
                    self.failures += 1
                    logger.debug("metrics scrape failed: %s", type(exc).__name__)
                if self._stop.wait(self._interval_s):
                    return

    def start(self) -> MetricSampler:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


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
        queue_depth_mean=mean("queue_depth"),
        kv_cache_usage_max=max(kv) if (kv := col("kv_cache_usage")) else None,
        kv_cache_usage_mean=mean("kv_cache_usage"),
        preemptions=int(max(pre) - min(pre)) if (pre := col("preemptions_total")) else None,
    )
