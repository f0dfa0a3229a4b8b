"""The root of every exception the library raises on purpose, and the stop by a signal.

Each package has its own tree under :class:`OpenAutoGLMError` (``CollectorError``,
``LoadgenError``, ``ServerError``, ``ModelPreparationError``, ``TelemetryError``,
``AnalysisError``, ``RunError``). ``open-autoglm`` (``cli.py``) maps the root to one line on
stderr and exit code 2; nothing else in the library knows about exit codes.

:class:`Interrupted` is not an error: it is how SIGINT, SIGTERM and SIGHUP unwind a run
(a :class:`KeyboardInterrupt`, so every ``except KeyboardInterrupt`` clean-up runs for all
three), and it carries the signal, from which ``cli.py`` makes the exit status 128 + signal.
"""

from __future__ import annotations

import signal


class OpenAutoGLMError(Exception):
    """Base of every error Open-AutoGLM raises on purpose; its message is one line for a user."""


class Interrupted(KeyboardInterrupt):
    """The process was asked to stop by signal ``signum`` (SIGINT, SIGTERM or SIGHUP).

    Raised once what finished is written. ``exit_code`` is the shell's convention for a
    process ended by that signal: 128 + ``signum`` (130, 143, 129).
    """

    def __init__(self, signum: int, message: str = "") -> None:
        self.signum = int(signum)
        super().__init__(message or f"stopped by {self.name_of(self.signum)}")

    @property
    def signal_name(self) -> str:
        return self.name_of(self.signum)

    @staticmethod
    def name_of(signum: int) -> str:
        """``SIGTERM`` for 15; ``signal N`` for a number the platform does not name."""
        try:
            return signal.Signals(signum).name
        except ValueError:
            return f"signal {signum}"

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


__all__ = ["Interrupted", "OpenAutoGLMError"]
