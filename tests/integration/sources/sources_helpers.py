"""Helpers for the analysis-source tests: a free port on 127.0.0.1, bounded polling.

The real Prometheus is :class:`open_autoglm.testing.PrometheusProcess`.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

DEADLINE_S = 90.0


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
