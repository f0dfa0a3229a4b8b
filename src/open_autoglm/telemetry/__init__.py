"""The telemetry contract (names, buckets), tracer set-up and resource probes."""

from open_autoglm.telemetry import _env as env
from open_autoglm.telemetry import _names as names
from open_autoglm.telemetry._asgi import ServerSpanMiddleware
from open_autoglm.telemetry._batch import (
    DEFAULT_MAX_QUEUE_SIZE,
    SHUTDOWN_STALL_S,
    BufferedSpanProcessor,
)
from open_autoglm.telemetry._buckets import (
    REQUEST_DURATION_BUCKETS,
    STAGE_BUCKETS,
    TPOT_BUCKETS,
    TTFT_BUCKETS,
)
from open_autoglm.telemetry._clock import wall_ns
from open_autoglm.telemetry._env import ENV_CACHE_DIR, ENV_CAPTURE_CONTENT
from open_autoglm.telemetry._export_metrics import ExportMetrics
from open_autoglm.telemetry._probes import (
    GpuProbe,
    GpuSample,
    peak_rss_bytes_of,
    process_peak_rss_bytes,
    process_rss_bytes,
    reset_peak_rss,
)
from open_autoglm.telemetry._request_spans import RequestSpan, SpanOutlet, current_request_span
from open_autoglm.telemetry._sampling import Decision, SamplingConfig, TailSampler
from open_autoglm.telemetry._served import serve_app
from open_autoglm.telemetry._server_metrics import LoadReading, ServerMetrics
from open_autoglm.telemetry._tracing import (
    TelemetryConfigError,
    TelemetryError,
    Tracing,
    TracingConfig,
    TrackingTracerProvider,
    make_exporter,
    make_tracer_provider,
    make_tracing,
    outlet_for,
)

__all__ = [
    "DEFAULT_MAX_QUEUE_SIZE",
    "ENV_CACHE_DIR",
    "ENV_CAPTURE_CONTENT",
    "REQUEST_DURATION_BUCKETS",
    "SHUTDOWN_STALL_S",
    "STAGE_BUCKETS",
    "TPOT_BUCKETS",
    "TTFT_BUCKETS",
    "BufferedSpanProcessor",
    "Decision",
    "ExportMetrics",
    "GpuProbe",
    "GpuSample",
    "LoadReading",
    "RequestSpan",
    "SamplingConfig",
    "ServerMetrics",
    "ServerSpanMiddleware",
    "SpanOutlet",
    "TailSampler",
    "TelemetryConfigError",
    "TelemetryError",
    "Tracing",
    "TracingConfig",
    "TrackingTracerProvider",
    "current_request_span",
    "env",
    "make_exporter",
    "make_tracer_provider",
    "make_tracing",
    "names",
    "outlet_for",
    "peak_rss_bytes_of",
    "process_peak_rss_bytes",
    "process_rss_bytes",
    "reset_peak_rss",
    "serve_app",
    "wall_ns",
]
