"""The collector's exceptions: one tree under :class:`~open_autoglm.errors.OpenAutoGLMError`."""

from __future__ import annotations

from open_autoglm.errors import OpenAutoGLMError


class CollectorError(OpenAutoGLMError):
    """Base of every error the collector raises."""


class CollectorConfigError(CollectorError, ValueError):
    """A setting that cannot work (a negative port, a limit of zero, a missing folder)."""


class CollectorStartError(CollectorError):
    """The collector could not start: a port in use, or a child that never became ready."""


class DecodeError(CollectorError):
    """An OTLP request body that cannot be decoded; the message says why (HTTP 400)."""


class BodyTooLargeError(DecodeError):
    """A request body, or its decompressed form, over the configured limit (HTTP 413)."""


class UnsupportedMediaTypeError(DecodeError):
    """A ``Content-Type`` or ``Content-Encoding`` the receiver does not speak (HTTP 415)."""
