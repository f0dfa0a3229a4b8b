"""Open-AutoGLM: benchmark LLM inference servers and explain their latency."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("open-autoglm")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
