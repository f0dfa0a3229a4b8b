"""A real Prometheus binary for tests: on 127.0.0.1, it scrapes given targets (every second).

The config is written here; storage, config and log go to a folder of the caller's or a
temporary one. Exemplar storage is on, so exemplars can be queried too.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import httpx

from open_autoglm._child_process import ChildExitedError, ChildNotReadyError, ChildProcess
from open_autoglm.errors import OpenAutoGLMError
from open_autoglm.testing._ports import free_port

_POLL_S: Final = 0.2
_STOP_GRACE_S: Final = 10.0


class PrometheusError(OpenAutoGLMError, RuntimeError):
    """Prometheus is not installed, exited or never became ready (the message carries its log),
    or it answered a query with an error."""


class PrometheusProcess:
    """``with PrometheusProcess(["127.0.0.1:8000"]) as prometheus:`` a real ``prometheus``.

    It listens on 127.0.0.1, on a port free when it starts, and scrapes ``targets``
    (``host:port``) every ``scrape_interval_s`` as the job ``job``. ``folder`` receives its
    config, its storage (``data/``) and its log (stderr); by default a temporary folder that is
    removed on exit. ``binary`` defaults to ``prometheus`` on ``PATH``.
    """

    def __init__(
        self,
        targets: Sequence[str],
        folder: Path | None = None,
        *,
        binary: str | None = None,
        job: str = "open-autoglm",
        scrape_interval_s: int = 1,
        timeout_s: float = 90.0,
    ) -> None:
        self._targets = list(targets)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if folder is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="open-autoglm-prometheus-")
            folder = Path(self._tmp.name)
        self.folder = folder
        self._binary = binary
        self._job = job
        self._scrape_interval_s = scrape_interval_s
        self._timeout_s = timeout_s
        self._child: ChildProcess | None = None
        self.port = 0
        self.url = ""

    @property
    def log_path(self) -> Path:
        return self.folder / "prometheus.log"

    def logs(self) -> str:
        """What Prometheus has written to its stderr so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> PrometheusProcess:
        """Start Prometheus and return once ``/-/ready`` answers; :class:`PrometheusError`
        if it is not installed, exits first or is not ready in ``timeout_s``."""
        binary = self._binary or shutil.which("prometheus")
        if binary is None:
            raise PrometheusError("prometheus is not installed (not found on PATH)")
        config = self.folder / "prometheus.yml"
        targets = ", ".join(f"'{target}'" for target in self._targets)
        config.write_text(
            f"global:\n  scrape_interval: {self._scrape_interval_s}s\n"
            f"scrape_configs:\n  - job_name: {self._job}\n"
            f"    static_configs:\n      - targets: [{targets}]\n",
            encoding="utf-8",
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--enable-feature=exemplar-storage",
            "--log.level=warn",
        ]
        self._child = ChildProcess.start("prometheus", command, stderr_path=self.log_path)
        try:
            self._child.wait_ready(
                self._ready, self._timeout_s, poll_s=_POLL_S, grace_s=_STOP_GRACE_S
            )
        except ChildExitedError as exc:
            raise PrometheusError(
                f"prometheus exited with {exc.returncode}\n{self.logs()}"
            ) from exc
        except ChildNotReadyError as exc:
            raise PrometheusError(
                f"prometheus not ready after {self._timeout_s} s\n{self.logs()}"
            ) from exc
        return self

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The result of the instant query ``expr`` (``/api/v1/query``); raises if it failed."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10.0)
        body = response.json()
        if body.get("status") != "success":
            raise PrometheusError(f"query {expr!r} failed: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def stop(self, timeout_s: float = _STOP_GRACE_S) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout_s``; the exit status (``None``: never started)."""
        return self._child.stop(timeout_s) if self._child is not None else None

    def __enter__(self) -> PrometheusProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
