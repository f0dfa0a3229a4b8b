"""Settings of the tracing proxy, built once in the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from open_autoglm.errors import OpenAutoGLMError


class ProxyConfigError(OpenAutoGLMError, ValueError):
    """A proxy setting that cannot work (an upstream that is not an http(s) URL, say)."""


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """``upstream``: base URL of the OpenAI-compatible server (``http://host:port``); paths
    are appended as the client sent them. ``read_timeout_s``: longest silence of the upstream
    (before headers, or between chunks) before the request fails as a stall."""

    upstream: str
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 300.0
    max_body_bytes: int = 32 * 1024 * 1024
    max_connections: int = 0  # 0: unlimited (the upstream's own limits apply)

    def __post_init__(self) -> None:
        parts = urlsplit(self.upstream)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ProxyConfigError(
                f"--upstream must be an http(s) URL such as http://127.0.0.1:8000, "
                f"got {self.upstream!r}"
            )
        if parts.query or parts.fragment:
            raise ProxyConfigError("--upstream must not carry a query or fragment")
        if not (self.connect_timeout_s > 0 and self.read_timeout_s > 0):
            raise ProxyConfigError("timeouts must be positive")
        if self.max_body_bytes < 1024:
            raise ProxyConfigError("max_body_bytes must be at least 1024")

    @property
    def base(self) -> str:
        return self.upstream.rstrip("/")
