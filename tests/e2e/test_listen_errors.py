"""``serve`` and ``proxy`` as a user starts them: a port in use or an address this machine
does not have is the documented one line and exit 2 (as ``collector``), not uvicorn's log
line and exit 3; a normal start is announced plainly on stderr, not as a warning."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from open_autoglm.testing import ServerProcess


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 that another socket is listening on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        yield holder.getsockname()[1]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "open_autoglm", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


_COMMANDS = {
    "serve": ("serve", "--backend", "sim"),
    "proxy": ("proxy", "--upstream", "http://127.0.0.1:9", "--no-tracing"),
    "collector": ("collector", "--grpc-port", "0"),
}


@pytest.mark.parametrize("command", sorted(_COMMANDS))
def test_a_port_in_use_is_one_line_and_exit_2(command: str, busy_port: int, tmp_path: Path) -> None:
    port_flag = "--http-port" if command == "collector" else "--port"
    args = _COMMANDS[command]
    if command == "collector":
        args = (*args, "--db", str(tmp_path / "spans.duckdb"))
    done = _cli(*args, port_flag, str(busy_port), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("open-autoglm: error: cannot listen"), line
    assert f"127.0.0.1:{busy_port}" in line
    assert "in use" in line.lower()


@pytest.mark.parametrize("command", ["serve", "proxy"])
def test_an_address_this_machine_lacks_is_one_line_and_exit_2(command: str, tmp_path: Path) -> None:
    # 192.0.2.1 is TEST-NET-1 (RFC 5737): no interface of this machine has it
    done = _cli(*_COMMANDS[command], "--host", "192.0.2.1", "--port", "0", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("open-autoglm: error: cannot listen on 192.0.2.1:0: "), line


@pytest.mark.parametrize("command", ["serve", "proxy"])
def test_a_normal_start_is_announced_plainly(
    command: str, sim_server: ServerProcess, tmp_path: Path
) -> None:
    log = tmp_path / f"{command}.log"
    args = ("--backend", "sim") if command == "serve" else ("--upstream", sim_server.url)
    with ServerProcess(args, command=(command,), log_path=log) as server:
        text = log.read_text()
        assert f"on {server.url}" in text, text
        assert "WARNING" not in text, text
    assert "ERROR" not in log.read_text()
