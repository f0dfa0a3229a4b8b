"""Bounded polling for tests and scripts: wait for a condition, never sleep a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from open_autoglm.errors import OpenAutoGLMError

T = TypeVar("T")


class WaitTimeoutError(OpenAutoGLMError, TimeoutError):
    """The condition did not hold before the deadline; the message says what was awaited."""


def wait_for(
    what: str,
    check: Callable[[], T | None],
    *,
    timeout_s: float = 90.0,
    interval_s: float = 0.2,
    logs: Callable[[], str] | None = None,
) -> T:
    """Call ``check`` every ``interval_s`` seconds until it returns something truthy; return it.

    Raises :class:`WaitTimeoutError` after ``timeout_s`` seconds, naming ``what`` and adding
    ``logs()`` (a server's stderr, say) to the message.
    """
    if timeout_s <= 0 or interval_s <= 0:
        raise ValueError("timeout_s and interval_s must be positive")
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            detail = f"\n{logs()}" if logs is not None else ""
            raise WaitTimeoutError(f"timed out after {timeout_s} s waiting for {what}{detail}")
        time.sleep(interval_s)
