"""Children started by ``open_autoglm._child_process``, with real processes: each leads a
process group of its own, ``stop`` ends the group (what the child started included), and a
child whose parent is killed outright stops by itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from open_autoglm._child_process import PARENT_PIPE_ENV, ChildProcess
from open_autoglm.testing import wait_for

pytestmark = pytest.mark.skipif(os.name != "posix", reason="process groups and pipes: POSIX")

SRC = str(Path(__file__).resolve().parents[2] / "src")

#: A child that starts a grandchild (which ignores SIGTERM when told to), writes the
#: grandchild's pid to argv[1], then waits.
FAMILY = textwrap.dedent(
    """
    import subprocess, sys, time
    stubborn = sys.argv[2] == "stubborn"
    code = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            if stubborn else "import time; ") + "time.sleep(600)"
    grandchild = subprocess.Popen([sys.executable, "-c", code])
    open(sys.argv[1] + ".tmp", "w").write(str(grandchild.pid))
    __import__("os").replace(sys.argv[1] + ".tmp", sys.argv[1])
    time.sleep(600)
    """
)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("grandchild", ["obedient", "stubborn"])
def test_stop_ends_the_child_and_everything_it_started(tmp_path: Path, grandchild: str) -> None:
    pid_file = tmp_path / "grandchild.pid"
    child = ChildProcess.start("family", [sys.executable, "-c", FAMILY, str(pid_file), grandchild])
    grandchild_pid = int(
        wait_for("the grandchild's pid", lambda: pid_file.exists() and pid_file.read_text())
    )
    assert os.getpgid(child.pid) == child.pid != os.getpgid(0)  # a group of its own
    assert os.getpgid(grandchild_pid) == child.pid

    code = child.stop(grace_s=10)

    assert code == -signal.SIGTERM
    wait_for("the grandchild to end", lambda: _gone(grandchild_pid), timeout_s=10)


def test_a_ctrl_c_while_waiting_for_readiness_stops_the_child(tmp_path: Path) -> None:
    child = ChildProcess.start("sleeper", [sys.executable, "-c", "import time; time.sleep(600)"])

    def ready() -> bool:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        child.wait_ready(ready, 60, poll_s=0.01, grace_s=10)
    assert child.poll() is not None
    assert _gone(child.pid)


#: A parent that starts one watched child (``python -m open_autoglm collector``: a real one),
#: writes the child's pid, and waits to be killed.
PARENT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from open_autoglm._child_process import ChildProcess
    out = Path(sys.argv[1])
    child = ChildProcess.start("collector", [sys.executable, "-m", "open_autoglm",
        "--log-level", "INFO", "collector", "--db", str(out / "spans.duckdb"),
        "--http-port", "0", "--grpc-port", "off", "--ready-file", str(out / "ready.json")],
        stderr_path=out / "collector.log")
    (out / "child.pid").write_text(str(child.pid))
    time.sleep(600)
    """
)


@pytest.mark.slow
def test_a_child_stops_when_its_parent_is_killed_outright(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path)], env=env)
    try:
        wait_for("the collector to be ready", (tmp_path / "ready.json").exists, timeout_s=60)
        child_pid = int((tmp_path / "child.pid").read_text())
        assert PARENT_PIPE_ENV in psutil.Process(child_pid).environ()  # it was told
        parent.kill()
        parent.wait(10)
        wait_for("the orphaned collector to stop", lambda: _gone(child_pid), timeout_s=20)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    log = (tmp_path / "collector.log").read_text()
    assert "the parent process" in log
    assert "is gone; stopping" in log
    assert "collector stopped" in log  # a clean stop: what it held is stored


def test_stop_ends_a_child_that_is_not_a_group_leader() -> None:
    """A Popen made elsewhere (not in a session of its own): ``killpg`` finds no group, so the
    signal goes to the child itself; before, the stop waited on it forever."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert os.getpgid(process.pid) != process.pid
    status = ChildProcess("sleeper", process).stop(grace_s=5.0)
    assert status == -signal.SIGTERM
