"""Helpers for tests that users of Open-AutoGLM need too: a server process, span capture."""

from open_autoglm.testing._otlp_sink import OtlpSink, SinkSpan
from open_autoglm.testing._server_process import ServerProcess, ServerStartError

__all__ = ["OtlpSink", "ServerProcess", "ServerStartError", "SinkSpan"]
