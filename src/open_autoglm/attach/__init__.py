"""Attach to a running service without rewriting it: an OpenTelemetry instrumentor for
vLLM-based servers (``opentelemetry-instrument``) and a tracing proxy in front of any
OpenAI-compatible server. Empty until those land (issue 12 made the room)."""

__all__: list[str] = []
