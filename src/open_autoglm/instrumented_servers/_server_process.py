"""Start ``open-autoglm serve`` as a child process on a free port, wait until it is ready."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final

import httpx

from open_autoglm._child_process import ChildExitedError, ChildNotReadyError, ChildProcess
from open_autoglm.instrumented_servers._errors import ServerError

_POLL_S: Final = 0.05
_STOP_GRACE_S: Final = 10.0


class ServerStartError(ServerError, RuntimeError):
    """The server exited or never became healthy; the message carries its stderr."""


class ServerProcess:
    """``open-autoglm serve`` on 127.0.0.1, port chosen by the OS, as a context manager.

    Readiness: the server writes a ready file once it listens; then ``/health`` must answer.
    Stderr goes to a file (never an unread pipe) and is shown if start-up fails.
    """

    def __init__(
        self,
        args: Sequence[str] = ("--backend", "sim"),
        env: Mapping[str, str] | None = None,
        timeout_s: float = 60.0,
        command: Sequence[str] = ("serve",),
        launcher: Sequence[str] = (),
        log_path: Path | None = None,
        on_spawn: Callable[[int], None] | None = None,
    ) -> None:
        """``launcher`` goes before the interpreter, e.g. ``("taskset", "-c", "0")``;
        ``log_path`` keeps the server's stderr, and the ready file goes beside it (hidden,
        removed by the server as it stops); without it both go to a temporary folder.
        ``on_spawn`` is called with the child's pid as soon as it exists, before it is ready
        (a memory watch that must see the model load)."""
        self._on_spawn = on_spawn
        self._args = list(args)
        self._env = dict(os.environ if env is None else env)
        self._timeout_s = timeout_s
        self._command = list(command)
        self._launcher = list(launcher)
        self._dir = (
            None
            if log_path is not None
            else tempfile.TemporaryDirectory(prefix="open-autoglm-server-")
        )
        self._log_path = log_path
        self._child: ChildProcess | None = None
        self.url = ""
        self.port = 0

    @property
    def pid(self) -> int:
        assert self._child is not None
        return self._child.pid

    def wait_exited(self) -> int:
        """Block until the child has exited (without reaping it); its exit status, negative
        when a signal killed it. For a watcher thread: ``stop`` still works meanwhile."""
        if self._child is None:
            raise RuntimeError("the child was never started")
        return self._child.wait_exited()

    @property
    def returncode(self) -> int | None:
        """The child's exit status once it has exited (negative: killed by that signal),
        else ``None``."""
        return self._child.poll() if self._child is not None else None

    @property
    def stderr_path(self) -> Path:
        if self._log_path is not None:
            return self._log_path
        assert self._dir is not None
        return Path(self._dir.name) / "stderr.log"

    @property
    def _ready_file(self) -> Path:
        if self._log_path is not None:
            return self._log_path.with_name(f".{self._log_path.name}.ready.json")
        assert self._dir is not None
        return Path(self._dir.name) / "ready.json"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def start(self) -> ServerProcess:
        ready_file = self._ready_file
        ready_file.unlink(missing_ok=True)  # a stale one (a server killed outright) is no sign
        cmd = [*self._launcher, sys.executable, "-m", "open_autoglm", *self._command,
               "--host", "127.0.0.1", "--port", "0", "--ready-file", str(ready_file),
               *self._args]  # fmt: skip
        self._child = ChildProcess.start("server", cmd, env=self._env, stderr_path=self.stderr_path)
        if self._on_spawn is not None:
            self._on_spawn(self._child.pid)

        def ready() -> bool:
            if not ready_file.exists():
                return False
            info = json.loads(ready_file.read_text())
            self.url, self.port = info["url"], int(info["port"])
            return self._healthy()

        try:
            self._child.wait_ready(ready, self._timeout_s, poll_s=_POLL_S, grace_s=_STOP_GRACE_S)
        except ChildExitedError as exc:
            raise ServerStartError(
                f"server exited with status {exc.returncode}: {self._last_line()} "
                f"(log: {self.stderr_path})\n{self.stderr()}"
            ) from exc
        except ChildNotReadyError as exc:
            raise ServerStartError(
                f"server not ready after {self._timeout_s} s: {self._last_line()} "
                f"(log: {self.stderr_path})\n{self.stderr()}"
            ) from exc
        return self

    def _last_line(self) -> str:
        lines = [line for line in self.stderr().splitlines() if line.strip()]
        return lines[-1].strip() if lines else "no output"

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, timeout_s: float = _STOP_GRACE_S) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout_s``; returns the exit status."""
        return self._child.stop(timeout_s) if self._child is not None else None

    def __enter__(self) -> ServerProcess:
        try:
            return self.start()
        except BaseException:  # a server that never came up: stop it, remove its folder
            self.__exit__(None, None, None)
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self._ready_file.unlink(missing_ok=True)
        if self._dir is not None:
            self._dir.cleanup()
