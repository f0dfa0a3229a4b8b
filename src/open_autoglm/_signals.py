"""The signals that stop a run — SIGINT, SIGTERM, SIGHUP — and a scoped handler for them.

``timeout``, CI cancellation and ``docker stop`` send SIGTERM, a closed terminal SIGHUP,
Ctrl-C SIGINT: a run treats the three alike (stop sending, write what finished, exit
128 + signal). :func:`handle_stop_signals` installs one handler for all three for the length
of a ``with`` block and puts the previous handlers back after it; a signal the process
ignores (``nohup`` ignores SIGHUP, a shell's background job SIGINT) stays ignored. Handlers
can only be installed from the main thread: elsewhere the block runs with none.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, Final

from open_autoglm.errors import Interrupted

#: What stops a run, in the order they are installed (SIGHUP where the platform has it).
STOP_SIGNALS: Final[tuple[signal.Signals, ...]] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)

Handler = Callable[[int, FrameType | None], Any]


@contextmanager
def handle_stop_signals(handler: Handler) -> Iterator[tuple[signal.Signals, ...]]:
    """Call ``handler(signum, frame)`` on each stop signal inside the block (main thread only);
    yields the signals it handles (none outside the main thread, none the process ignores)."""
    if threading.current_thread() is not threading.main_thread():
        yield ()
        return
    previous: dict[signal.Signals, Any] = {}
    try:
        for sig in STOP_SIGNALS:
            current = signal.getsignal(sig)
            if current == signal.SIG_IGN:
                continue
            previous[sig] = current
            signal.signal(sig, handler)
        yield tuple(previous)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


def raise_interrupted(signum: int, frame: FrameType | None) -> None:
    """A handler that unwinds the main thread with :class:`Interrupted` (a KeyboardInterrupt)."""
    raise Interrupted(signum)
