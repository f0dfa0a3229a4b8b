"""Stopping a benchmark while it runs, from a signal handler or from any thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from open_autoglm.errors import Interrupted

if TYPE_CHECKING:
    from open_autoglm.loadgen._results import BenchmarkResults


class BenchmarkInterrupted(Interrupted):
    """A benchmark stopped by a signal, raised once its partial ``results`` are written."""

    def __init__(self, signum: int, results: BenchmarkResults) -> None:
        super().__init__(signum)
        self.results = results


class RunStop:
    """A handle that stops a running benchmark; pass it to :func:`run_benchmark`.

    :meth:`stop` may be called from any thread or a signal handler; the first call wins. The
    run then sends nothing more, cancels the requests in flight (each recorded with status
    ``cancelled``) and writes the results of what finished, with ``stop_reason`` set.
    Stopped with a signal, :func:`run_benchmark` raises :class:`BenchmarkInterrupted` (an
    :class:`~open_autoglm.errors.Interrupted`) once they are written; stopped without one, it
    returns them.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()  # a signal handler may run while the main thread holds it
        self._reason: str | None = None
        self._signum: int | None = None
        self._cancel: Callable[[], None] | None = None

    @property
    def reason(self) -> str | None:
        """Why the run was stopped (``None`` while it was not)."""
        return self._reason

    @property
    def signum(self) -> int | None:
        """The signal that stopped the run, if a signal did."""
        return self._signum

    def stop(self, reason: str, signum: int | None = None) -> None:
        """Stop the run for ``reason`` (one line, e.g. "the server exited with status -9")."""
        with self._lock:
            if self._reason is not None:
                return
            self._reason, self._signum = reason, signum
            cancel = self._cancel
        if cancel is not None:
            cancel()

    def bind(self, cancel: Callable[[], None]) -> None:
        """The runner's side: ``cancel`` (thread-safe) ends the load; called at once if the run
        was stopped already."""
        with self._lock:
            self._cancel = cancel
            stopped = self._reason is not None
        if stopped:
            cancel()

    def unbind(self) -> None:
        with self._lock:
            self._cancel = None
