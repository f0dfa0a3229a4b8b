"""Attach to a running service without rewriting it: an OpenTelemetry instrumentor for
vLLM's server (:class:`VllmInstrumentor`, found by ``opentelemetry-instrument``) and a tracing
proxy in front of any OpenAI-compatible server; the names of vLLM's own ``llm_request`` span
(:mod:`.vllm_spans`). Loading this package never imports vLLM."""

from open_autoglm.attach import _vllm_spans as vllm_spans
from open_autoglm.attach._vllm_instrumentor import VllmInstrumentor

__all__ = ["VllmInstrumentor", "vllm_spans"]
