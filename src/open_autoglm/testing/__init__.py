"""Helpers for tests that users of Open-AutoGLM need too: a server process, span capture, a
real Prometheus, synthetic runs with a planted bottleneck."""

from open_autoglm.instrumented_servers._server_process import ServerProcess, ServerStartError
from open_autoglm.testing._otlp_sink import OtlpSink, SinkSpan
from open_autoglm.testing._prometheus import PrometheusError, PrometheusProcess
from open_autoglm.testing._synthetic import SyntheticRun

__all__ = [
    "OtlpSink",
    "PrometheusError",
    "PrometheusProcess",
    "ServerProcess",
    "ServerStartError",
    "SinkSpan",
    "SyntheticRun",
]
