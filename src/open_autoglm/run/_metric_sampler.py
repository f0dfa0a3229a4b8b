"""Samples of the server's ``/metrics`` during a run: memory, queue depth, batch size, KV-cache
usage, preemptions, GPU, from our server's families or a known server's (vLLM, SGLang, TGI:
:mod:`._server_families`).

Written as ``server_metrics.jsonl`` (one JSON object a line: ``unix_ns`` and the gauges of
``SAMPLE_FAMILIES``);
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

from open_autoglm.run._server_families import parse_sample

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
