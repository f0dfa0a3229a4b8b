"""The managed run's own errors (those of its parts keep their own types)."""

from __future__ import annotations

from open_autoglm.errors import OpenAutoGLMError


class RunError(OpenAutoGLMError):
    """Base of every error the managed run raises itself."""


class RunDirectoryError(RunError):
    """The run directory cannot be used (it already holds another run's records)."""
