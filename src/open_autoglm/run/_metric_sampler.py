"""Samples of the server's ``/metrics`` during a run: memory, queue depth, batch size, GPU.

Written as ``server_metrics.jsonl`` (one JSON object a line: ``unix_ns`` and the gauges below);
:func:`open_autoglm.analysis.summarize_samples` reads it back for the report.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from open_autoglm.telemetry import names as n

logger = logging.getLogger(__name__)

_FIELDS = {
    n.METRIC_PROCESS_RSS: "rss_bytes",
    n.METRIC_PROCESS_PEAK_RSS: "peak_rss_bytes",
    n.METRIC_PROCESS_LOAD_PEAK_RSS: "load_peak_rss_bytes",
    n.METRIC_QUEUE_DEPTH: "queue_depth",
    n.METRIC_BATCH_SIZE: "batch_size",
    n.METRIC_BATCH_CAP: "batch_cap",
    n.METRIC_GPU_MEMORY_USED: "gpu_memory_used_bytes",
    n.METRIC_GPU_UTILIZATION: "gpu_utilization",
}


def parse_sample(text: str) -> dict[str, float]:
    """The gauges we keep from one scrape (GPU values summed over devices, utilisation averaged)."""
    sample: dict[str, float] = {}
    gpu_util: list[float] = []
    for family in text_string_to_metric_families(text):
        key = _FIELDS.get(family.name)
        if key is None:
            continue
        values = [s.value for s in family.samples if s.name == family.name]
        if not values:
            continue
        if key == "gpu_utilization":
            gpu_util.extend(values)
        else:
            sample[key] = float(sum(values))
    if gpu_util:
        sample["gpu_utilization"] = sum(gpu_util) / len(gpu_util)
    return sample


class MetricSampler:
    """Scrapes ``url`` every ``interval_s`` in a thread, appending each sample to a JSONL file.

    A scrape that fails is counted and skipped: the run goes on.
    """

    def __init__(self, url: str, path: Path, interval_s: float = 0.5) -> None:
        self._url = url.rstrip("/") + "/metrics"
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
