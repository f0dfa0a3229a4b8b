"""A server's Prometheus metrics (names from the telemetry contract), with exemplars.

Shared by ``open-autoglm serve`` and ``open-autoglm proxy`` (whose provider label is
``proxy``): the same GenAI histograms, token and request counters, load gauges, memory, GPU.

Labels are the GenAI semantic conventions' attribute names as Prometheus writes them
(``gen_ai_request_model``, ``gen_ai_provider_name``, ``gen_ai_operation_name``); the provider
is the backend. Process metrics are ``prometheus_client``'s standard ``process_*`` families;
peak memory, which they lack, is ours: the peak while the model was prepared and loaded, and
the peak since serving began (see :class:`MemoryMarks`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from open_autoglm.telemetry import _names as n
from open_autoglm.telemetry._buckets import (
    REQUEST_DURATION_BUCKETS,
    STAGE_BUCKETS,
    TPOT_BUCKETS,
    TTFT_BUCKETS,
)
from open_autoglm.telemetry._probes import GpuProbe, process_peak_rss_bytes, reset_peak_rss


class LoadReading(Protocol):
    """What a server reports of its load now (``instrumented_servers.BackendLoad`` is one)."""

    @property
    def queue_depth(self) -> int: ...
    @property
    def running(self) -> int: ...
    @property
    def batch_cap(self) -> int | None: ...


_LABELS = (n.LABEL_MODEL, n.LABEL_PROVIDER, n.LABEL_OPERATION)


class MemoryMarks:
    """Peak resident memory of this process, split at the moment the model is ready.

    :meth:`loaded` (called once the backend has started: model prepared and loaded) keeps
    the kernel's high-water mark so far as the load peak and resets the mark (Linux), so
    that :meth:`serving_peak_bytes` is the peak since serving began. Where the mark cannot be
    reset, the serving peak stays the peak since the process started, and ``reset`` is False.
    """

    def __init__(self) -> None:
        self.load_peak_bytes: int | None = None
        self.reset = False

    def loaded(self) -> None:
        self.load_peak_bytes = process_peak_rss_bytes()
        self.reset = reset_peak_rss()

    def serving_peak_bytes(self) -> int:
        return process_peak_rss_bytes()


class _ScrapeTimeCollector(Collector):
    """Gauges read when Prometheus scrapes: queue depth, batch size, RSS, GPU."""

    def __init__(
        self,
        model: str,
        backend: str,
        load: Callable[[], LoadReading],
        gpu: GpuProbe | None,
        memory: MemoryMarks,
    ) -> None:
        self._labels = [model, backend]
        self._load = load
        self._gpu = gpu
        self._memory = memory

    def collect(self) -> Iterator[Metric]:
        names = [n.LABEL_MODEL, n.LABEL_PROVIDER]
        load = self._load()
        queue = GaugeMetricFamily(
            n.METRIC_QUEUE_DEPTH, "Requests waiting to be scheduled", labels=names
        )
        queue.add_metric(self._labels, load.queue_depth)
        batch = GaugeMetricFamily(
            n.METRIC_BATCH_SIZE, "Sequences in the running batch", labels=names
        )
        batch.add_metric(self._labels, load.running)
        peak = GaugeMetricFamily(
            n.METRIC_PROCESS_PEAK_RSS,
            "Peak resident memory of the server process since serving began (the kernel's "
            "high-water mark, reset once the model had loaded)",
            unit="bytes",
        )
        peak.add_metric([], self._memory.serving_peak_bytes())
        yield from (queue, batch, peak)
        if self._memory.load_peak_bytes is not None:
            load_peak = GaugeMetricFamily(
                n.METRIC_PROCESS_LOAD_PEAK_RSS,
                "Peak resident memory of the server process while it prepared and loaded the model",
                unit="bytes",
            )
            load_peak.add_metric([], self._memory.load_peak_bytes)
            yield load_peak
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
    """Histograms and counters of one server, in their own registry. ``process_metrics``:
    also prometheus_client's ``process_*`` families (off where the host process exposes them
    already, as vLLM's registry does when we attach to it)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        model: str,
        backend: str,
        load: Callable[[], LoadReading],
        gpu: GpuProbe | None = None,
        *,
        process_metrics: bool = True,
    ) -> None:
        self.registry = registry
        self.model = model
        self.backend = backend
        self.memory = MemoryMarks()
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
            (n.LABEL_MODEL, n.LABEL_PROVIDER, n.LABEL_ERROR_TYPE), registry=registry,
        )  # fmt: skip
        registry.register(_ScrapeTimeCollector(model, backend, load, gpu, self.memory))
        if process_metrics:  # process_*: CPU, RSS, virtual memory, fds
            ProcessCollector(registry=registry)

    def error(self, error_type: str, model: str | None = None) -> None:
        """Count a failed request by type (``model``: the request's, default the server's)."""
        self.errors.labels(model or self.model, self.backend, error_type).inc()

    def observe_request(
        self,
        model: str,
        operation: str,
        *,
        arrival_ns: int,
        first_output_ns: int,
        last_output_ns: int,
        prompt_tokens: int,
        output_tokens: int,
        finish_reason: str | None,
        error_type: str | None,
        cancelled: bool,
        exemplar: dict[str, str] | None,
    ) -> None:
        """Count one finished request (``perf_counter_ns`` stamps; 0 = not seen): an error
        by its type only; otherwise tokens, finish reason and, unless cancelled or without
        output, TTFT, duration and TPOT, each with ``exemplar`` (``{"trace_id": ...}``)."""
        if error_type is not None:
            self.error(error_type, model)
            return
        labels = (model, self.backend, operation)
        if finish_reason is not None:
            self.requests.labels(*labels, finish_reason).inc()
        self.prompt_tokens.labels(*labels).inc(prompt_tokens)
        self.generation_tokens.labels(*labels).inc(output_tokens)
        if cancelled or not first_output_ns:
            return
        self.ttft.labels(*labels).observe((first_output_ns - arrival_ns) / 1e9, exemplar)
        self.duration.labels(*labels).observe((last_output_ns - arrival_ns) / 1e9, exemplar)
        if output_tokens > 1:
            tpot = (last_output_ns - first_output_ns) / (output_tokens - 1)
            self.tpot.labels(*labels).observe(tpot / 1e9, exemplar)
