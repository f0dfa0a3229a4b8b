"""The telemetry contract (names, buckets), tracer set-up and resource probes."""

from open_autoglm.telemetry import _names as names
from open_autoglm.telemetry._asgi import ServerSpanMiddleware
from open_autoglm.telemetry._batch import DEFAULT_MAX_QUEUE_SIZE, BufferedSpanProcessor
from open_autoglm.telemetry._buckets import (
    REQUEST_DURATION_BUCKETS,
    STAGE_BUCKETS,
    TPOT_BUCKETS,
    TTFT_BUCKETS,
)
from open_autoglm.telemetry._export_metrics import ExportMetrics
from open_autoglm.telemetry._probes import (
    GpuProbe,
    GpuSample,
    process_peak_rss_bytes,
    process_rss_bytes,
)
from open_autoglm.telemetry._request_spans import RequestSpan, SpanOutlet, current_request_span
from open_autoglm.telemetry._sampling import Decision, SamplingConfig, TailSampler
from open_autoglm.telemetry._tracing import (
    TelemetryConfigError,
    Tracing,
    TracingConfig,
    make_exporter,
    make_tracer_provider,
    make_tracing,
)

__all__ = [
    "DEFAULT_MAX_QUEUE_SIZE",
    "REQUEST_DURATION_BUCKETS",
    "STAGE_BUCKETS",
    "TPOT_BUCKETS",
    "TTFT_BUCKETS",
    "BufferedSpanProcessor",
    "Decision",
    "ExportMetrics",
    "GpuProbe",
    "GpuSample",
    "RequestSpan",
    "SamplingConfig",
    "ServerSpanMiddleware",
    "SpanOutlet",
    "TailSampler",
    "TelemetryConfigError",
    "Tracing",
    "TracingConfig",
    "current_request_span",
    "make_exporter",
    "make_tracer_provider",
    "make_tracing",
    "names",
    "process_peak_rss_bytes",
    "process_rss_bytes",
]
