"""The command line's own error: a mistake in the arguments."""

from __future__ import annotations

from open_autoglm.errors import OpenAutoGLMError


class UsageError(OpenAutoGLMError):
    """A mistake in the command line or its inputs: ``cli.py`` prints one line and exits 2.

    Raised only by ``commands/``; the library raises its own trees under
    :class:`~open_autoglm.errors.OpenAutoGLMError`, which ``cli.py`` maps the same way.
    """
