"""``serve`` and ``proxy`` stop in a few seconds on a signal when the OTLP collector is down:
the span export at exit is bounded (``SHUTDOWN_STALL_S``) and what it could not send is
counted in one line. Real processes on 127.0.0.1; the collector's port has nothing on it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from open_autoglm.telemetry import SHUTDOWN_STALL_S
from open_autoglm.testing import ServerProcess, free_port, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.name != "posix", reason="signals: POSIX"),
]

#: A stop's bound: the span export's, plus the interpreter's exit, on a busy machine.
STOP_BOUND_S = SHUTDOWN_STALL_S + 4.0
HELLO = [{"role": "user", "content": "hi"}]


@contextmanager
def started(args: Sequence[str], folder: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``open-autoglm ARGS --ready-file ...`` once it accepts requests, and its URL."""
    ready = folder / "ready.json"
    command = [sys.executable, "-m", "open_autoglm", *args, "--ready-file", str(ready)]
    with (folder / "stderr").open("wb") as err:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=err)
    try:
        wait_for("ready", lambda: proc.poll() is not None or ready.exists(), timeout_s=60)
        assert proc.poll() is None, (folder / "stderr").read_text()
        yield proc, json.loads(ready.read_text())["url"]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


def _target(command: str, upstream: ServerProcess) -> list[str]:
    """``serve`` on the zero-cost sim, or ``proxy`` in front of ``upstream``."""
    if command == "serve":
        return ["serve", "--backend", "sim", "--backend-option", "cost=zero"]
    return ["proxy", "--upstream", upstream.url]


def _ask(url: str) -> None:
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "sim-llm", "max_tokens": 4, "messages": HELLO},
        timeout=30,
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("command", ["serve", "proxy"])
@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc", "http/json"])
def test_a_signal_stops_it_in_seconds_with_the_collector_down(
    tmp_path: Path, zero_cost_server: ServerProcess, command: str, protocol: str
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: connections are refused
    target = _target(command, zero_cost_server)
    args = [*target, "--port", "0", "--otlp-endpoint", dead, "--otlp-protocol", protocol]
    with started(args, tmp_path) as (proc, url):
        for _ in range(3):
            _ask(url)
        began = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
        took = time.monotonic() - began
    stderr = (tmp_path / "stderr").read_text()
    assert code == 130, stderr
    assert took < STOP_BOUND_S, stderr  # 31 s before the bound
    dropped = [line for line in stderr.splitlines() if "spans were dropped" in line]
    assert len(dropped) == 1, stderr  # never silent, one line
    assert "0 exported" in dropped[0]


@pytest.mark.parametrize("command", ["serve", "proxy"])
def test_a_second_signal_ends_the_wait_for_a_collector_that_never_answers(
    tmp_path: Path, zero_cost_server: ServerProcess, command: str
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as hung:  # accepts, never answers
        endpoint = f"http://127.0.0.1:{hung.getsockname()[1]}"
        target = _target(command, zero_cost_server)
        with started([*target, "--port", "0", "--otlp-endpoint", endpoint], tmp_path) as (
            proc,
            url,
        ):
            _ask(url)
            began = time.monotonic()
            proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(0.3)  # a user's second Ctrl-C, while the export waits
            proc.send_signal(signal.SIGINT)
            code = proc.wait(60)
            took = time.monotonic() - began
    stderr = (tmp_path / "stderr").read_text()
    assert code == 130, stderr
    assert took < SHUTDOWN_STALL_S, stderr  # the wait for the collector was cut short
    assert "spans were dropped" in stderr
