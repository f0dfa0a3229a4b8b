"""The collector as a child process: started, awaited until ready, stopped with SIGTERM.

The child is ``python -m open_autoglm collector ... --ready-file F``; it writes ``F`` (JSON:
ports, endpoints, pid) only once both receivers listen and the file is open, so the parent
polls for that file while checking the child is alive: no fixed sleep, no fixed port.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from open_autoglm._child_process import ChildExitedError, ChildNotReadyError, ChildProcess
from open_autoglm.collector._config import CollectorConfig
from open_autoglm.collector._errors import CollectorStartError

_POLL_S: Final = 0.02
_STOP_GRACE_S: Final = 60.0


class CollectorProcess:
    """``with CollectorProcess(config) as child:`` runs the collector in a child process.

    ``log_path`` receives the child's stderr (its log); by default it goes to this process's
    stderr. ``stop`` sends SIGTERM, which makes the child store every accepted span and exit 0.
    """

    def __init__(
        self,
        config: CollectorConfig,
        *,
        log_path: Path | None = None,
        log_level: str = "INFO",
        python: str = sys.executable,
        env: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self._log_path = log_path
        self._log_level = log_level
        self._python = python
        self._env = env
        self._child: ChildProcess | None = None
        self.info: dict[str, Any] = {}

    def command(self, ready_file: Path) -> list[str]:
        config = self.config
        cmd = [
            self._python,
            "-m",
            "open_autoglm",
            "--log-level",
            self._log_level,
            "collector",
            "--host",
            config.host,
            "--db",
            str(config.db_path),
            "--ready-file",
            str(ready_file),
            "--max-body-bytes",
            str(config.max_body_bytes),
            "--flush-interval",
            str(config.flush_interval_s),
        ]
        for flag, port in (("--http-port", config.http_port), ("--grpc-port", config.grpc_port)):
            cmd += [flag, "off" if port is None else str(port)]
        return cmd

    def start(self, timeout_s: float = 60.0) -> CollectorProcess:
        """Start the child and return once it is ready; :class:`CollectorStartError` if not."""
        with tempfile.TemporaryDirectory(prefix="open-autoglm-collector-") as tmp:
            ready_file = Path(tmp) / "ready.json"
            self._child = ChildProcess.start(
                "collector",
                self.command(ready_file),
                env=self._env,
                stderr_path=self._log_path,
                append_stderr=True,
            )
            try:
                self._child.wait_ready(
                    ready_file.exists, timeout_s, poll_s=_POLL_S, grace_s=_STOP_GRACE_S
                )
            except ChildExitedError as exc:
                raise CollectorStartError(
                    f"the collector exited with status {exc.returncode} before it was ready"
                    + (f"; see {self._log_path}" if self._log_path else "")
                ) from exc
            except ChildNotReadyError as exc:
                raise CollectorStartError(
                    f"the collector was not ready after {timeout_s} s"
                ) from exc
            self.info = json.loads(ready_file.read_text())
        return self

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    def wait_exited(self) -> int:
        """Block until the child has exited (without reaping it); its exit status, negative
        when a signal killed it. For a watcher thread: ``stop`` still works meanwhile."""
        if self._child is None:
            raise RuntimeError("the child was never started")
        return self._child.wait_exited()

    @property
    def returncode(self) -> int | None:
        """The child's exit status once it has exited, else ``None``."""
        return self._child.poll() if self._child is not None else None

    @property
    def http_port(self) -> int | None:
        port: int | None = self.info.get("http_port")
        return port

    @property
    def grpc_port(self) -> int | None:
        port: int | None = self.info.get("grpc_port")
        return port

    @property
    def http_endpoint(self) -> str | None:
        endpoint: str | None = self.info.get("http_endpoint")
        return endpoint

    @property
    def traces_url(self) -> str | None:
        url: str | None = self.info.get("traces_url")
        return url

    @property
    def grpc_endpoint(self) -> str | None:
        endpoint: str | None = self.info.get("grpc_endpoint")
        return endpoint

    def stop(self, timeout_s: float = _STOP_GRACE_S) -> int | None:
        """SIGTERM, wait for the child to flush and exit; SIGKILL after ``timeout_s``.

        Returns the exit status (0 after a clean flush), ``None`` if it was never started.
        """
        return self._child.stop(timeout_s) if self._child is not None else None

    def __enter__(self) -> CollectorProcess:
        return self.start() if self._child is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def write_ready_file(path: Path, info: dict[str, Any]) -> None:
    """Write ``info`` as JSON so that a reader never sees a partial file (rename is atomic)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, path)
