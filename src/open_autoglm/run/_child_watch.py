"""Watching a managed run's children while the load runs: a death stops the run at once.

Without it a run whose server was killed sends its remaining requests to a dead port (every
one a connection error) and ends as if nothing happened. :class:`ChildWatch` waits on each
child in a thread of its own (``waitid`` without reaping, so the run can still stop the child
its own way); the first that exits while the watch is on is :attr:`ChildWatch.death`, and the
run is stopped at once through its :class:`~open_autoglm.loadgen.RunStop`, with a reason that
names the child and its status.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from open_autoglm.loadgen import RunStop

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChildDeath:
    """A child that exited while the run needed it: its name, pid and exit status (negative:
    killed by that signal, as ``subprocess`` has it)."""

    name: str
    pid: int
    returncode: int

    def describe(self) -> str:
        """One line: "the server (pid 123) was killed by SIGKILL (exit status -9) mid-run"."""
        code = self.returncode
        if code < 0:
            try:
                how = f"was killed by {signal.Signals(-code).name} (exit status {code})"
            except ValueError:
                how = f"was killed by signal {-code} (exit status {code})"
        else:
            how = f"exited with status {code}"
        return f"the {self.name} (pid {self.pid}) {how} mid-run"


class WatchedChild(Protocol):
    """A child process as the watch sees it (:class:`~open_autoglm.instrumented_servers.
    ServerProcess`, :class:`~open_autoglm.collector.CollectorProcess`)."""

    @property
    def pid(self) -> int | None: ...

    def wait_exited(self) -> int: ...


class ChildWatch:
    """Watches ``children`` (by name) while a ``with`` block runs; on the first death it
    calls ``stop.stop(reason)``. A child that exits after the block is none of its business
    (the run stops its children itself)."""

    def __init__(self, children: Mapping[str, WatchedChild], stop: RunStop) -> None:
        self._children = dict(children)
        self._stop = stop
        self._lock = threading.Lock()
        self._on = False
        self.death: ChildDeath | None = None

    def _wait(self, name: str, child: WatchedChild) -> None:
        code = child.wait_exited()
        with self._lock:
            if not self._on or self.death is not None:
                return
            self.death = ChildDeath(name, child.pid or 0, code)
        reason = self.death.describe()
        logger.info("%s; stopping the run", reason)
        self._stop.stop(reason)

    def __enter__(self) -> ChildWatch:
        self._on = True
        for name, child in self._children.items():
            threading.Thread(
                target=self._wait, args=(name, child), name=f"watch-{name}", daemon=True
            ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._on = False  # the waiting threads end when their children do
