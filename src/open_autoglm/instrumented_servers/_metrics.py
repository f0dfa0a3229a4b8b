"""The server's Prometheus metrics (names from the telemetry contract), with exemplars."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from open_autoglm.instrumented_servers._backend import BackendLoad
from open_autoglm.telemetry import (
    REQUEST_DURATION_BUCKETS,
    STAGE_BUCKETS,
    TPOT_BUCKETS,
    TTFT_BUCKETS,
    GpuProbe,
    process_peak_rss_bytes,
    process_rss_bytes,
)
from open_autoglm.telemetry import names as n

_LABELS = (n.LABEL_MODEL, n.LABEL_BACKEND, n.LABEL_OPERATION)


class _ScrapeTimeCollector(Collector):
    """Gauges read when Prometheus scrapes: queue depth, batch size, RSS, GPU."""

    def __init__(
        self,
        model: str,
        backend: str,
        load: Callable[[], BackendLoad],
        gpu: GpuProbe | None,
    ) -> None:
        self._labels = [model, backend]
        self._load = load
        self._gpu = gpu

    def collect(self) -> Iterator[Metric]:
        names = [n.LABEL_MODEL, n.LABEL_BACKEND]
        load = self._load()
        queue = GaugeMetricFamily(
            n.METRIC_QUEUE_DEPTH, "Requests waiting to be scheduled", labels=names
        )
        queue.add_metric(self._labels, load.queue_depth)
        batch = GaugeMetricFamily(
            n.METRIC_BATCH_SIZE, "Sequences in the running batch", labels=names
        )
        batch.add_metric(self._labels, load.running)
        rss = GaugeMetricFamily(n.METRIC_PROCESS_RSS, "Resident memory of the server process")
        rss.add_metric([], process_rss_bytes())
        peak = GaugeMetricFamily(
            n.METRIC_PROCESS_PEAK_RSS, "Peak resident memory of the server process"
        )
        peak.add_metric([], process_peak_rss_bytes())
        yield from (queue, batch, rss, peak)
        if load.batch_cap is not None:
            cap = GaugeMetricFamily(
                n.METRIC_BATCH_CAP, "Adaptive cap on the running batch (--target-tpot)",
                labels=names,
            )  # fmt: skip
            cap.add_metric(self._labels, load.batch_cap)
            yield cap
        if self._gpu is None or not self._gpu.available:
            return
        used = GaugeMetricFamily(
            n.METRIC_GPU_MEMORY_USED, "GPU memory in use", labels=[n.LABEL_GPU]
        )
        total = GaugeMetricFamily(n.METRIC_GPU_MEMORY_TOTAL, "GPU memory", labels=[n.LABEL_GPU])
        util = GaugeMetricFamily(n.METRIC_GPU_UTILIZATION, "GPU utilisation", labels=[n.LABEL_GPU])
        for sample in self._gpu.sample():
            gpu = [str(sample.index)]
            used.add_metric(gpu, sample.memory_used_bytes)
            total.add_metric(gpu, sample.memory_total_bytes)
            util.add_metric(gpu, sample.utilization_ratio)
        yield from (used, total, util)


class ServerMetrics:
    """Histograms and counters of one server, in their own registry."""

    def __init__(
        self,
        registry: CollectorRegistry,
        model: str,
        backend: str,
        load: Callable[[], BackendLoad],
        gpu: GpuProbe | None = None,
    ) -> None:
        self.registry = registry
        self.model = model
        self.backend = backend
        self.ttft = Histogram(
            n.METRIC_TTFT, "Time to first token, from request arrival", _LABELS,
            buckets=TTFT_BUCKETS, registry=registry,
        )  # fmt: skip
        self.tpot = Histogram(
            n.METRIC_TPOT, "Time per output token after the first", _LABELS,
            buckets=TPOT_BUCKETS, registry=registry,
        )  # fmt: skip
        self.duration = Histogram(
            n.METRIC_REQUEST_DURATION, "Request duration, arrival to last token", _LABELS,
            buckets=REQUEST_DURATION_BUCKETS, registry=registry,
        )  # fmt: skip
        self.stage = Histogram(
            n.METRIC_STAGE_DURATION, "Time of one request in one server stage",
            (*_LABELS, n.LABEL_STAGE), buckets=STAGE_BUCKETS, registry=registry,
        )  # fmt: skip
        self.prompt_tokens = Counter(
            n.METRIC_PROMPT_TOKENS, "Prompt tokens processed", _LABELS, registry=registry
        )
        self.generation_tokens = Counter(
            n.METRIC_GENERATION_TOKENS, "Output tokens generated", _LABELS, registry=registry
        )
        self.requests = Counter(
            n.METRIC_REQUESTS, "Finished requests", (*_LABELS, n.LABEL_FINISH_REASON),
            registry=registry,
        )  # fmt: skip
        self.errors = Counter(
            n.METRIC_REQUEST_ERRORS, "Failed requests by error type",
            (n.LABEL_MODEL, n.LABEL_BACKEND, n.LABEL_ERROR_TYPE), registry=registry,
        )  # fmt: skip
        registry.register(_ScrapeTimeCollector(model, backend, load, gpu))

    def error(self, error_type: str) -> None:
        self.errors.labels(self.model, self.backend, error_type).inc()
