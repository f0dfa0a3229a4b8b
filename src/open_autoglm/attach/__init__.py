"""Attach to a running service without rewriting it: an OpenTelemetry instrumentor for
vLLM-based servers (``opentelemetry-instrument``) and a tracing proxy in front of any
OpenAI-compatible server; the names of vLLM's own ``llm_request`` span (:mod:`.vllm_spans`)."""

from open_autoglm.attach import _vllm_spans as vllm_spans

__all__ = ["vllm_spans"]
