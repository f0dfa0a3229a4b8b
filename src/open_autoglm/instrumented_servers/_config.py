"""Settings of the instrumented server, built once in the CLI."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Final

from open_autoglm.telemetry import ENV_CAPTURE_CONTENT

DEFAULT_MAX_BODY_BYTES: Final = 32 * 1024 * 1024
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"", "0", "false", "no", "off"})


def capture_content_from_env() -> bool:
    """Whether ``OPEN_AUTOGLM_CAPTURE_CONTENT`` opts in to recording prompt and completion
    text (``1``/``true``/``yes``/``on``; unset, ``0``/``false``/``no``/``off``: no).

    Raises ValueError for any other value, so a typo never records text silently.
    """
    raw = os.environ.get(ENV_CAPTURE_CONTENT, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(f"{ENV_CAPTURE_CONTENT} must be 1 or 0 (true/false), got {raw!r}")


DEFAULT_OFF_LOOP_BODY_BYTES: Final = 256 * 1024
DEFAULT_HEADER_TIMEOUT_S: Final = 30.0
DEFAULT_BODY_TIMEOUT_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    #: Largest request body accepted; larger gets 413 (images arrive as base64 in the body).
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: Bodies this large or larger are parsed, decoded and tokenised in a worker thread, and
    #: their context length is checked there before the backend sees them.
    off_loop_body_bytes: int = DEFAULT_OFF_LOOP_BODY_BYTES
    #: Default ``max_tokens`` of ``/v1/completions`` when the request names none (OpenAI's).
    default_completion_tokens: int = 16
    #: Most seconds from a connection (or a kept-alive request's first byte) to the end of the
    #: request's headers; then 408 and the connection is closed (``_read_timeouts``).
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    #: Most seconds between two pieces of a request's body; then 408 and close.
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    #: Also serve ``/metrics`` and ``/health`` spans (off: they would flood the trace store).
    trace_probes: bool = False
    #: Record the prompt and the completion on the server span (``gen_ai.input.messages``,
    #: ``gen_ai.output.messages``, as the GenAI conventions' opt-in). Default: the
    #: ``OPEN_AUTOGLM_CAPTURE_CONTENT`` variable when the config is built, else off.
    capture_content: bool = field(default_factory=capture_content_from_env)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {self.port}")
        if self.max_body_bytes < 1024:
            raise ValueError("max_body_bytes must be at least 1024")
        if not (self.header_timeout_s > 0 and self.body_timeout_s > 0):
            raise ValueError("--header-timeout and --body-timeout must be positive seconds")
