"""A child process started here: awaited until it is ready, stopped with SIGTERM then SIGKILL.

Shared by the collector's and the server's process wrappers (and the testing Prometheus). The
parent polls a readiness check while checking the child is alive, so there is no fixed sleep.
Failures to start are :class:`ChildExitedError` and :class:`ChildNotReadyError`; each caller
maps them to its own exception with its own message.

On POSIX each child leads a process group of its own (a new session): a Ctrl-C at the
terminal reaches the parent only, which stops its children in order (the server before the
collector that stores its spans); :meth:`ChildProcess.stop` signals that group, so whatever
the child started ends with it, and signals nothing else. A child never outlives its parent:
it inherits the read end of a pipe whose write end only the parent holds (its number in
``OPEN_AUTOGLM_PARENT_PIPE_FD``); ``open-autoglm`` started so calls :func:`watch_parent`, and
when the pipe reads EOF — the parent is gone, even by ``kill -9`` — or its parent pid changes,
it sends itself SIGTERM (a clean stop: the collector stores its spans), and exits after
``PARENT_GONE_GRACE_S`` if that has not ended it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

from open_autoglm.errors import OpenAutoGLMError

logger = logging.getLogger(__name__)

#: Names the inherited read end of the parent's pipe in a child started here (POSIX).
PARENT_PIPE_ENV: Final = "OPEN_AUTOGLM_PARENT_PIPE_FD"
#: How long a child whose parent died waits after its own SIGTERM before it exits anyway: a
#: backstop above a clean stop's own bounds (uvicorn's 5 s for open connections, the span
#: export's 2 s without a batch through: ``telemetry._batch.SHUTDOWN_STALL_S``).
PARENT_GONE_GRACE_S: Final = 10.0
#: How often the watch checks the parent pid (the pipe's EOF wakes it at once).
_WATCH_POLL_S: Final = 1.0
_POSIX: Final = os.name == "posix"


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

    def __init__(
        self, name: str, process: subprocess.Popen[bytes], parent_pipe: int | None = None
    ) -> None:
        self.name = name
        self._process = process
        self._parent_pipe = parent_pipe  # the write end: closed, the child knows we are gone

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
        inherits this process's environment. On POSIX the child starts a session of its own
        and gets the parent pipe (module docstring).
        """
        devnull = subprocess.DEVNULL
        child_env = dict(os.environ if env is None else env)
        read_end = write_end = None
        if _POSIX:
            read_end, write_end = os.pipe()  # both non-inheritable: only pass_fds crosses
            child_env[PARENT_PIPE_ENV] = str(read_end)
        err = None if stderr_path is None else stderr_path.open("ab" if append_stderr else "wb")
        try:
            process = subprocess.Popen(
                command,
                stdin=devnull,
                stdout=devnull,
                stderr=err,
                env=child_env,
                start_new_session=_POSIX,
                pass_fds=() if read_end is None else (read_end,),
            )
        except BaseException:
            if write_end is not None:
                os.close(write_end)
            raise
        finally:
            if err is not None:
                err.close()
            if read_end is not None:
                os.close(read_end)
        return cls(name, process, write_end)

    @property
    def pid(self) -> int:
        return self._process.pid

    def poll(self) -> int | None:
        """The exit status once the child has exited, else ``None`` (a child that has exited
        stays a zombie until :meth:`stop`, so its process group stays ours to signal)."""
        return _exited(self._process)

    def wait_exited(self, poll_s: float = 0.05) -> int:
        """Block until the child has exited; its exit status. Does not reap it (as
        :meth:`poll`), so another thread may wait here while this one goes on; where the
        platform has no ``waitid`` it polls every ``poll_s``."""
        process = self._process
        if hasattr(os, "waitid"):
            with contextlib.suppress(ChildProcessError):  # reaped by stop(): status is set
                os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
        while (code := _exited(process)) is None:
            time.sleep(poll_s)
        return code

    def wait_ready(
        self, ready: Callable[[], bool], timeout_s: float, *, poll_s: float, grace_s: float
    ) -> None:
        """Poll ``ready()`` every ``poll_s`` until it is true.

        :class:`ChildExitedError` if the child exits first; :class:`ChildNotReadyError` after
        ``timeout_s``, once the child has been stopped (:meth:`stop` with ``grace_s``); anything
        else that interrupts the wait (:class:`KeyboardInterrupt`) stops the child too.
        """
        deadline = time.monotonic() + timeout_s
        try:
            while not ready():
                code = self.poll()
                if code is not None:
                    self.stop(grace_s)  # reaps it, ends what it left in its group
                    raise ChildExitedError(self.name, self._process.returncode)
                if time.monotonic() > deadline:
                    self.stop(grace_s)
                    raise ChildNotReadyError(self.name, timeout_s)
                time.sleep(poll_s)
        except BaseException:  # a Ctrl-C or SIGTERM while waiting: no child left behind
            self.stop(grace_s)
            raise

    def stop(self, grace_s: float) -> int:
        """SIGTERM to the child's process group, wait up to ``grace_s`` for the child to exit,
        then SIGKILL to the group; the exit status. Whatever interrupts the wait (a second
        Ctrl-C) kills the group before it propagates: no child is left behind."""
        process = self._process
        try:
            if _exited(process) is None:
                self._signal_group(signal.SIGTERM)
                deadline = time.monotonic() + grace_s
                while _exited(process) is None:
                    if time.monotonic() > deadline:
                        logger.error(
                            "%s pid %d did not stop in %s s; killing it",
                            self.name,
                            process.pid,
                            grace_s,
                        )
                        break
                    time.sleep(0.01)
        except BaseException:
            self._signal_group(_SIGKILL)
            process.wait()
            self._close_pipe()
            raise
        # the leader has exited but is not reaped yet, so the group id is still ours: end
        # what it left behind (or the leader itself, after the grace) before reaping it
        self._signal_group(_SIGKILL)
        process.wait()
        self._close_pipe()
        return process.returncode

    def _signal_group(self, sig: int) -> None:
        process = self._process
        if process.returncode is not None:
            return  # reaped: its pid and group id may be someone else's now
        if _POSIX:
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:  # not a group leader (started by someone else's Popen)
                with contextlib.suppress(OSError):
                    process.send_signal(sig)
            except PermissionError:
                pass
        else:
            with contextlib.suppress(OSError):
                process.send_signal(sig)

    def _close_pipe(self) -> None:
        if self._parent_pipe is not None:
            os.close(self._parent_pipe)
            self._parent_pipe = None


_SIGKILL: Final = getattr(signal, "SIGKILL", signal.SIGTERM)


def _exited(process: subprocess.Popen[bytes]) -> int | None:
    """The exit status once the child has exited, without reaping it where the platform can
    (``waitid`` with ``WNOWAIT``), so that its process group id cannot be reused meanwhile."""
    if process.returncode is not None:
        return process.returncode
    if hasattr(os, "waitid"):
        try:
            info = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return process.poll()
        if info is None:
            return None
        killed = info.si_code in (getattr(os, "CLD_KILLED", -1), getattr(os, "CLD_DUMPED", -1))
        return -info.si_status if killed else info.si_status  # as Popen.returncode has it
    return process.poll()


def watch_parent() -> bool:
    """In a child started by :class:`ChildProcess`: end this process once its parent is gone.

    Reads the pipe named by ``OPEN_AUTOGLM_PARENT_PIPE_FD`` (and forgets the variable, so this
    process's own children do not take another descriptor for it) in a daemon thread. On EOF
    or a change of parent pid, logs it and sends this process SIGTERM; if the process is still
    alive ``PARENT_GONE_GRACE_S`` later, exits with status 1. Returns whether it is watching.
    """
    raw = os.environ.pop(PARENT_PIPE_ENV, None)
    if raw is None or not _POSIX:
        return False
    try:
        fd = int(raw)
        os.set_inheritable(fd, False)
    except (ValueError, OSError):
        logger.warning("%s=%r is not a descriptor; not watching the parent", PARENT_PIPE_ENV, raw)
        return False
    parent = os.getppid()
    thread = threading.Thread(target=_watch, args=(fd, parent), name="parent-watch", daemon=True)
    thread.start()
    return True


def _watch(fd: int, parent: int) -> None:
    while True:
        try:
            readable, _, _ = select.select([fd], [], [], _WATCH_POLL_S)
            if readable and not os.read(fd, 1):
                break  # EOF: the write end is closed, the parent is gone
        except OSError:
            break
        if os.getppid() != parent:
            break
    logger.warning("the parent process (pid %d) is gone; stopping", parent)
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(PARENT_GONE_GRACE_S)
    os._exit(1)
