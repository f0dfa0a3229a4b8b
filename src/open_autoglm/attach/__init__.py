"""Attach to a running service without rewriting it: an OpenTelemetry instrumentor for
vLLM's server (:class:`VllmInstrumentor`, found by ``opentelemetry-instrument``), a tracing
proxy in front of any OpenAI-compatible server (:class:`TracingProxy`, ``open-autoglm
proxy``), and the names of vLLM's own ``llm_request`` span (:mod:`.vllm_spans`). Loading this
package never imports vLLM."""

from open_autoglm.attach import _vllm_spans as vllm_spans
from open_autoglm.attach._config import ProxyConfig, ProxyConfigError
from open_autoglm.attach._genai import GENERATION_PATHS
from open_autoglm.attach._proxy import TracingProxy, create_proxy_app
from open_autoglm.attach._serve_proxy import serve_proxy
from open_autoglm.attach._vllm_instrumentor import VllmInstrumentor

__all__ = [
    "GENERATION_PATHS",
    "ProxyConfig",
    "ProxyConfigError",
    "TracingProxy",
    "VllmInstrumentor",
    "create_proxy_app",
    "serve_proxy",
    "vllm_spans",
]
