"""The root of every error analysis raises; each source and step subclasses it."""

from __future__ import annotations

from open_autoglm.errors import OpenAutoGLMError


class AnalysisError(OpenAutoGLMError):
    """Base of every error analysis raises (report, sources, gate, objectives)."""
