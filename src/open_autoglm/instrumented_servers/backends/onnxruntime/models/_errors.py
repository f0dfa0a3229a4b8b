"""Errors of model preparation and resolution."""

from __future__ import annotations

from open_autoglm._errors import UsageError


class ModelPreparationError(UsageError):
    """A model cannot be prepared or found: a missing package, a bad file, no disk space.

    A :class:`~open_autoglm._errors.UsageError`, so the CLI prints it as one line and exits 2.
    """
