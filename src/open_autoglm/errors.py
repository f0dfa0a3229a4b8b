"""The root of every exception the library raises on purpose.

Each package has its own tree under :class:`OpenAutoGLMError` (``CollectorError``,
``LoadgenError``, ``ServerError``, ``ModelPreparationError``, ``TelemetryError``,
``AnalysisError``, ``RunError``). ``open-autoglm`` (``cli.py``) maps the root to one line on
stderr and exit code 2; nothing else in the library knows about exit codes.
"""

from __future__ import annotations


class OpenAutoGLMError(Exception):
    """Base of every error Open-AutoGLM raises on purpose; its message is one line for a user."""


__all__ = ["OpenAutoGLMError"]
