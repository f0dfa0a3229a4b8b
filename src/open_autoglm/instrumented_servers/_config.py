"""Settings of the instrumented server, built once in the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

DEFAULT_MAX_BODY_BYTES: Final = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    #: Largest request body accepted; larger gets 413 (images arrive as base64 in the body).
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: Default ``max_tokens`` of ``/v1/completions`` when the request names none (OpenAI's).
    default_completion_tokens: int = 16
    #: Also serve ``/metrics`` and ``/health`` spans (off: they would flood the trace store).
    trace_probes: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {self.port}")
        if self.max_body_bytes < 1024:
            raise ValueError("max_body_bytes must be at least 1024")
