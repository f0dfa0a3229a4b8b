"""Helpers for tests that users of Open-AutoGLM need too: a server process, span capture, a
real Prometheus, synthetic runs with a planted bottleneck, a free port and bounded waiting."""

from open_autoglm.instrumented_servers import ServerProcess, ServerStartError
from open_autoglm.testing._otlp_sink import OtlpSink, SinkSpan
from open_autoglm.testing._ports import free_port
from open_autoglm.testing._prometheus import PrometheusError, PrometheusProcess
from open_autoglm.testing._synthetic import SyntheticRun
from open_autoglm.testing._wait import WaitTimeoutError, wait_for

__all__ = [
    "OtlpSink",
    "PrometheusError",
    "PrometheusProcess",
    "ServerProcess",
    "ServerStartError",
    "SinkSpan",
    "SyntheticRun",
    "WaitTimeoutError",
    "free_port",
    "wait_for",
]
