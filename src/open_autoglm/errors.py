"""The library's exception root: every error the package raises on purpose derives from
:class:`OpenAutoGLMError`; the CLI maps it to a one-line message and exit status 2."""

from __future__ import annotations


class OpenAutoGLMError(Exception):
    """Root of the package's exceptions."""
