"""Helpers for the analysis-source tests: a real Prometheus on 127.0.0.1, bounded polling.

The Prometheus start-up follows tests/integration/deploy/test_prometheus_exemplars.py (Debian's
package, 2.42, run directly with a config written here and ``exemplar-storage`` on).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

DEADLINE_S = 90.0


def prometheus_binary() -> str:
    """The ``prometheus`` binary; a failure under CI=1 when it is missing, else a skip."""
    path = shutil.which("prometheus")
    if path is None:
        if os.environ.get("CI") == "1":
            pytest.fail("prometheus is not installed; CI installs it (scripts/system-packages.txt)")
        pytest.skip("prometheus is not installed (make setup-system installs it)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(what: str, check: Callable[[], Any], logs: Callable[[], str] = str) -> Any:
    """Poll ``check`` until it returns something truthy (bounded, no fixed sleeps)."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}\n{logs()}")


@contextmanager
def running_prometheus(folder: Path, target_port: int) -> Iterator[str]:
    """A real Prometheus scraping ``127.0.0.1:target_port`` every second; yields its URL."""
    binary = prometheus_binary()
    config = folder / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n  - job_name: open-autoglm\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n",
        encoding="utf-8",
    )
    port = free_port()
    log = folder / "prometheus.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--enable-feature=exemplar-storage",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    url = f"http://127.0.0.1:{port}"

    def logs() -> str:
        return log.read_text(errors="replace")

    def ready() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"prometheus exited with {proc.returncode}\n{logs()}")
        try:
            return httpx.get(f"{url}/-/ready", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for("prometheus to be ready", ready, logs)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def instant(prometheus: str, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10.0)
    body = response.json()
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result
