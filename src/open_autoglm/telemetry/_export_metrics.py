"""Prometheus view of span export: spans exported, dropped, waiting; traces sampled out.

Read at scrape time from the :class:`~open_autoglm.telemetry._batch.BufferedSpanProcessor`
and the :class:`~open_autoglm.telemetry._sampling.TailSampler`, so a lost span shows on
``/metrics`` (and in the samples a managed run records) instead of only in a log.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from open_autoglm.telemetry import _names as n
from open_autoglm.telemetry._batch import BufferedSpanProcessor
from open_autoglm.telemetry._sampling import TailSampler


class ExportMetrics(Collector):
    """``autoglm_spans_exported_total``, ``autoglm_spans_dropped_total``,
    ``autoglm_spans_queued`` and ``autoglm_traces_sampled_out_total``; a part that is
    ``None`` (no exporter, no sampler) reads as zero."""

    def __init__(
        self, exporter: BufferedSpanProcessor | None, sampler: TailSampler | None = None
    ) -> None:
        self._exporter = exporter
        self._sampler = sampler

    def collect(self) -> Iterator[Metric]:
        exporter = self._exporter
        yield CounterMetricFamily(
            n.METRIC_SPANS_EXPORTED,
            "Spans the OTLP exporter delivered",
            value=exporter.exported if exporter else 0,
        )
        yield CounterMetricFamily(
            n.METRIC_SPANS_DROPPED,
            "Spans lost: export queue full, or the collector never took them",
            value=exporter.dropped if exporter else 0,
        )
        yield GaugeMetricFamily(
            n.METRIC_SPANS_QUEUED,
            "Spans waiting for export",
            value=exporter.queued if exporter else 0,
        )
        yield CounterMetricFamily(
            n.METRIC_TRACES_SAMPLED_OUT,
            "Requests whose spans the tail sampler dropped (metrics still count them)",
            value=self._sampler.sampled_out if self._sampler else 0,
        )
