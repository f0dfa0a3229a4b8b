"""Helpers for tests that users of Open-AutoGLM need too: a server process, span capture."""

from open_autoglm.instrumented_servers._server_process import ServerProcess, ServerStartError
from open_autoglm.testing._otlp_sink import OtlpSink, SinkSpan

__all__ = ["OtlpSink", "ServerProcess", "ServerStartError", "SinkSpan"]
