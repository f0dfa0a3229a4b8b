"""The telemetry contract (names, buckets), tracer set-up and resource probes."""

from open_autoglm.telemetry import _env as env
from open_autoglm.telemetry import _names as names
from open_autoglm.telemetry._buckets import (
    REQUEST_DURATION_BUCKETS,
    STAGE_BUCKETS,
    TPOT_BUCKETS,
    TTFT_BUCKETS,
)
from open_autoglm.telemetry._env import ENV_CACHE_DIR, ENV_CAPTURE_CONTENT
from open_autoglm.telemetry._probes import (
    GpuProbe,
    GpuSample,
    peak_rss_bytes_of,
    process_peak_rss_bytes,
    process_rss_bytes,
    reset_peak_rss,
)
from open_autoglm.telemetry._tracing import (
    TelemetryConfigError,
    TelemetryError,
    TracingConfig,
    TrackingTracerProvider,
    make_exporter,
    make_tracer_provider,
)

__all__ = [
    "ENV_CACHE_DIR",
    "ENV_CAPTURE_CONTENT",
    "REQUEST_DURATION_BUCKETS",
    "STAGE_BUCKETS",
    "TPOT_BUCKETS",
    "TTFT_BUCKETS",
    "GpuProbe",
    "GpuSample",
    "TelemetryConfigError",
    "TelemetryError",
    "TracingConfig",
    "TrackingTracerProvider",
    "env",
    "make_exporter",
    "make_tracer_provider",
    "names",
    "peak_rss_bytes_of",
    "process_peak_rss_bytes",
    "process_rss_bytes",
    "reset_peak_rss",
]
