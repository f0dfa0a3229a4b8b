"""Attach to servers we do not run: a tracing proxy in front of any OpenAI-compatible server."""

from open_autoglm.attach._proxy import (
    GENERATION_PATHS,
    ProxyConfig,
    ProxyConfigError,
    TracingProxy,
    create_proxy_app,
)

__all__ = [
    "GENERATION_PATHS",
    "ProxyConfig",
    "ProxyConfigError",
    "TracingProxy",
    "create_proxy_app",
]
