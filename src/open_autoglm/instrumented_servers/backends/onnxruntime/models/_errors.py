"""Errors of model preparation and resolution."""

from __future__ import annotations

from open_autoglm.errors import OpenAutoGLMError


class ModelPreparationError(OpenAutoGLMError):
    """A model cannot be prepared or found: a missing package, a bad file, no disk space.

    An :class:`~open_autoglm.errors.OpenAutoGLMError`, so the CLI prints it as one line and
    exits 2.
    """
