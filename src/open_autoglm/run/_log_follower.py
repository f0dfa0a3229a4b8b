"""The last line a child process wrote to its log, followed while it starts up.

A server that prepares its model first (GGUF to ONNX, minutes on a small machine) says what it
is doing on stderr, which a managed run sends to ``server.log``; the progress display shows
that line as it changes, so the screen is never blank while the server starts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

_TAIL_BYTES = 4096


def last_line(path: Path) -> str:
    """The last non-blank line of ``path`` (at most 100 characters); empty if none yet."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - _TAIL_BYTES))
            tail = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1][:100] if lines else ""


class LogFollower:
    """Calls ``on_line`` with the log's last line each time it changes, every ``interval_s``,
    from :meth:`start` until :meth:`stop`."""

    def __init__(
        self, path: Path, on_line: Callable[[str], None], interval_s: float = 0.25
    ) -> None:
        self._path = path
        self._on_line = on_line
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="log-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        seen = ""
        while not self._stop.is_set():
            line = last_line(self._path)
            if line and line != seen:
                seen = line
                self._on_line(line)
            self._stop.wait(self._interval_s)
