"""The signals that stop a run — SIGINT, SIGTERM, SIGHUP — and a scoped handler for them.

``timeout``, CI cancellation and ``docker stop`` send SIGTERM, a closed terminal SIGHUP,
Ctrl-C SIGINT: a run treats the three alike (stop sending, write what finished, exit
128 + signal). :func:`handle_stop_signals` installs one handler for all three for the length
of a ``with`` block and puts the previous handlers back after it; a signal the process
ignores (``nohup`` ignores SIGHUP, a shell's background job SIGINT) stays ignored. Handlers
can only be installed from the main thread: elsewhere the block runs with none.

Once a stop has begun, it finishes: :func:`begin_stop` notes the first stop signal while any
block is open (nested blocks share it: the load generator's inside the command's), and every
later one gets a line on stderr saying the stop is in progress, and nothing else, so that a
second Ctrl-C cannot cut the short write of the results, records and report of what finished.
SIGKILL remains for a process that must end now.
"""

from __future__ import annotations

import os
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


class _StopState:
    """The process's stop: the first stop signal while a block is open, and the blocks open
    (signals, like their handlers, are the process's, so this is module state)."""

    signum: int | None = None
    depth = 0


def stop_signal() -> int | None:
    """The signal that began the stop in progress (None while none is): what a caller that
    caught a bare :class:`KeyboardInterrupt` (Ray's ``get`` raises a new one) stopped for."""
    return _StopState.signum


def begin_stop(signum: int) -> bool:
    """Note stop signal ``signum`` (in a handler): True for the first, when the caller starts
    the stop; False while a stop is in progress, after a line on stderr that says so (written
    with ``os.write``: safe while the main thread is itself printing). Outside every
    :func:`handle_stop_signals` block each signal is a first one (nothing would end the stop)."""
    if _StopState.depth == 0:
        return True
    if _StopState.signum is None:
        _StopState.signum = signum
        return True
    name = Interrupted.name_of(signum)
    os.write(
        2,
        f"open-autoglm: {name}: the stop is in progress, writing what finished (results, "
        "records, report: a few seconds); SIGKILL ends it now without them\n".encode(),
    )
    return False


@contextmanager
def handle_stop_signals(handler: Handler) -> Iterator[tuple[signal.Signals, ...]]:
    """Call ``handler(signum, frame)`` on each stop signal inside the block (main thread only);
    yields the signals it handles (none outside the main thread, none the process ignores)."""
    if threading.current_thread() is not threading.main_thread():
        yield ()
        return
    previous: dict[signal.Signals, Any] = {}
    _StopState.depth += 1
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
        _StopState.depth -= 1
        if not _StopState.depth:
            _StopState.signum = None  # the outermost block: the stop is over


def raise_interrupted(signum: int, frame: FrameType | None) -> None:
    """A handler that unwinds the main thread with :class:`Interrupted` (a KeyboardInterrupt)
    on the first stop signal; a later one only says the stop is in progress
    (:func:`begin_stop`)."""
    if begin_stop(signum):
        raise Interrupted(signum)


def ignore_stop_signals() -> None:
    """After a stop has finished (all written, the process about to exit): later stop signals
    are ignored, so a late Ctrl-C cannot turn a stop that exited 130 into a death by SIGINT
    while the interpreter shuts down. Main thread only (elsewhere nothing happens); for the
    command line's entry, not for a library's caller."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
