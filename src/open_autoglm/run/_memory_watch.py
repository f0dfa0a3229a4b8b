"""Peak memory of the managed server process, from the process itself, interval by interval.

Written as ``server_memory.jsonl``: one JSON object a line, ``phase`` (``load``: from spawn
until the server answered; ``serve``: after), ``start_unix_ns``/``end_unix_ns`` of the
interval, ``rss_peak_bytes`` (the server's peak resident memory inside it),
``gpu_memory_peak_bytes`` (device memory in use, all devices, where NVML finds a GPU) and
``method``: how the RSS peak was taken.

* ``kernel``: Linux keeps the high-water mark of a process's RSS (``VmHWM``); at the end of
  every interval the watcher reads it and resets it (``5`` into ``/proc/PID/clear_refs``),
  so each row holds the exact peak of its interval, however short the spike.
* ``sampled``: where the mark cannot be reset (not Linux, or a sandbox that refuses), and
  while the model loads (the server keeps that mark for its own load-peak gauge), RSS is
  sampled every ``fast_interval_s`` and the row holds the largest sample.

GPU memory has no high-water mark in NVML: it is always sampled. The report takes the peak
over the rows inside the measured windows (warm-up and cool-down excluded), and the load
row apart (:func:`open_autoglm.analysis.summarize_samples`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from open_autoglm.telemetry import GpuProbe, peak_rss_bytes_of, reset_peak_rss

logger = logging.getLogger(__name__)


class ServerMemoryWatch:
    """Watches one process (:meth:`attach` it as soon as it is spawned; :meth:`serving` once
    it answers; :meth:`stop` at the end). Never raises into the run: a process that is gone
    ends the watch."""

    def __init__(
        self,
        path: Path,
        *,
        interval_s: float = 0.1,
        fast_interval_s: float = 0.01,
        gpu: GpuProbe | None = None,
    ) -> None:
        if not 0 < fast_interval_s <= interval_s:
            raise ValueError("need 0 < fast_interval_s <= interval_s")
        self._path = path
        self._interval_s = interval_s
        self._fast_s = fast_interval_s
        self._gpu = gpu
        self._stop = threading.Event()
        self._serving = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self.method = "sampled"
        self.rows = 0

    def attach(self, pid: int) -> None:
        """Start watching ``pid`` (the model-load phase)."""
        self._pid = pid
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._loop, name="memory-watch", daemon=True)
        self._thread.start()

    def serving(self) -> None:
        """The server answers: the load phase is over."""
        self._serving.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # ------------------------------------------------------------------ the thread
    def _loop(self) -> None:
        try:
            process = psutil.Process(self._pid)
            with self._path.open("a", encoding="utf-8") as out:
                self._watch(process, out)
        except (psutil.Error, OSError) as exc:  # the process is gone: nothing more to watch
            logger.debug("memory watch ended: %s", type(exc).__name__)

    def _watch(self, process: psutil.Process, out: Any) -> None:
        gpu = self._gpu if self._gpu is not None and self._gpu.available else None
        phase, kernel = "load", False
        start = time.time_ns()
        rss_peak, gpu_peak = 0, None
        next_row = time.perf_counter() + self._interval_s
        while True:
            if phase == "load" and self._serving.is_set():
                self._write(out, "load", start, rss_peak, gpu_peak, "sampled")
                phase, start, rss_peak, gpu_peak = "serve", time.time_ns(), 0, None
                kernel = reset_peak_rss(self._pid)
                self.method = "kernel" if kernel else "sampled"
                next_row = time.perf_counter() + self._interval_s
            if not kernel:
                rss_peak = max(rss_peak, int(process.memory_info().rss))
            if gpu is not None and (used := gpu.used_bytes()) is not None:
                gpu_peak = used if gpu_peak is None else max(gpu_peak, used)
            stopping = self._stop.is_set()
            if phase == "serve" and (time.perf_counter() >= next_row or stopping):
                if kernel:
                    hwm = peak_rss_bytes_of(self._pid)
                    reset_peak_rss(self._pid)
                    if hwm is None:
                        return
                    rss_peak = hwm
                self._write(out, "serve", start, rss_peak, gpu_peak, self.method)
                start, rss_peak, gpu_peak = time.time_ns(), 0, None
                next_row += self._interval_s
            if stopping:
                return
            fast = not kernel or gpu is not None or phase == "load"
            wait = self._fast_s if fast else max(0.0, next_row - time.perf_counter())
            self._stop.wait(wait)

    def _write(
        self, out: Any, phase: str, start: int, rss: int, gpu: int | None, method: str
    ) -> None:
        row: dict[str, Any] = {
            "phase": phase,
            "start_unix_ns": start,
            "end_unix_ns": time.time_ns(),
            "rss_peak_bytes": rss,
            "method": method,
        }
        if gpu is not None:
            row["gpu_memory_peak_bytes"] = gpu
        out.write(json.dumps(row) + "\n")
        out.flush()
        self.rows += 1
