"""A child process started here: awaited until it is ready, stopped with SIGTERM then SIGKILL.

Shared by the collector's and the server's process wrappers (and the testing Prometheus). The
parent polls a readiness check while checking the child is alive, so there is no fixed sleep;
it signals only the child it started, by that child's own pid. Failures to start are
:class:`ChildExitedError` and :class:`ChildNotReadyError`; each caller maps them to its own
exception with its own message.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from open_autoglm.errors import OpenAutoGLMError

logger = logging.getLogger(__name__)


class ChildStartError(OpenAutoGLMError):
    """The child did not become ready."""


class ChildExitedError(ChildStartError):
    """The child exited before it was ready."""

    def __init__(self, name: str, returncode: int) -> None:
        super().__init__(f"{name} exited with status {returncode} before it was ready")
        self.returncode = returncode


class ChildNotReadyError(ChildStartError):
    """The child was not ready in time; it has been stopped."""

    def __init__(self, name: str, timeout_s: float) -> None:
        super().__init__(f"{name} was not ready after {timeout_s} s")
        self.timeout_s = timeout_s


class ChildProcess:
    """A child started by :meth:`start`, named ``name`` in messages."""

    def __init__(self, name: str, process: subprocess.Popen[bytes]) -> None:
        self.name = name
        self._process = process

    @classmethod
    def start(
        cls,
        name: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stderr_path: Path | None = None,
        append_stderr: bool = False,
    ) -> ChildProcess:
        """Start ``command`` with no stdin and no stdout.

        Its stderr goes to ``stderr_path`` (appended to with ``append_stderr``, else truncated),
        never to an unread pipe; with no path it is this process's stderr. ``env`` ``None``
        inherits this process's environment.
        """
        devnull = subprocess.DEVNULL
        if stderr_path is None:
            process = subprocess.Popen(command, stdin=devnull, stdout=devnull, env=env)
        else:
            with stderr_path.open("ab" if append_stderr else "wb") as err:
                process = subprocess.Popen(
                    command, stdin=devnull, stdout=devnull, stderr=err, env=env
                )
        return cls(name, process)

    @property
    def pid(self) -> int:
        return self._process.pid

    def poll(self) -> int | None:
        """The exit status once the child has exited, else ``None``."""
        return self._process.poll()

    def wait_ready(
        self, ready: Callable[[], bool], timeout_s: float, *, poll_s: float, grace_s: float
    ) -> None:
        """Poll ``ready()`` every ``poll_s`` until it is true.

        :class:`ChildExitedError` if the child exits first; :class:`ChildNotReadyError` after
        ``timeout_s``, once the child has been stopped (:meth:`stop` with ``grace_s``).
        """
        deadline = time.monotonic() + timeout_s
        while not ready():
            code = self._process.poll()
            if code is not None:
                raise ChildExitedError(self.name, code)
            if time.monotonic() > deadline:
                self.stop(grace_s)
                raise ChildNotReadyError(self.name, timeout_s)
            time.sleep(poll_s)

    def stop(self, grace_s: float) -> int:
        """SIGTERM, wait up to ``grace_s`` for the child to exit, then SIGKILL; the exit status."""
        process = self._process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(grace_s)
            except subprocess.TimeoutExpired:
                logger.error(
                    "%s pid %d did not stop in %s s; killing it", self.name, process.pid, grace_s
                )
                process.kill()
                process.wait()
        return process.returncode
