"""Attach to a running service without rewriting it: a tracing proxy in front of any
OpenAI-compatible server (and, later, an OpenTelemetry instrumentor for vLLM-based servers)."""

from open_autoglm.attach._config import ProxyConfig, ProxyConfigError
from open_autoglm.attach._genai import GENERATION_PATHS
from open_autoglm.attach._proxy import TracingProxy, create_proxy_app
from open_autoglm.attach._serve_proxy import serve_proxy

__all__ = [
    "GENERATION_PATHS",
    "ProxyConfig",
    "ProxyConfigError",
    "TracingProxy",
    "create_proxy_app",
    "serve_proxy",
]
