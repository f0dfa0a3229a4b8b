"""A real two-node Ray cluster on this machine, for the distributed load generator's tests.

``ray start --head`` and a second ``ray start --address …`` as another node, each kept in
the foreground (``--block``) so that ending those two processes, by PID, stops everything
they started; whatever survives a grace period (their descendants, collected while they
ran) is killed by PID too. Nothing else on the machine is touched (no ``ray stop``).

Loopback: Ray rewrites ``127.0.0.1`` to the machine's outward address unless it is told
that the head is not a cluster (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, under which the
head's GCS and raylet bind 127.0.0.1 only and token authentication is on, turned off here
with ``RAY_AUTH_MODE=disabled``). The second node and the driver reach the head at the
IPv4-mapped ``[::ffff:127.0.0.1]:PORT``, which Ray leaves alone; the second node's address
is then loopback too, though Ray binds a cluster node's ports on every interface.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import psutil

#: What every Ray process of the test cluster and the test's drivers get.
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


@dataclass
class RayCluster:
    address: str  # for --ray-address: [::ffff:127.0.0.1]:PORT
    temp_dir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        """The environment for a driver of this cluster."""
        env = {**os.environ, **RAY_ENV}
        env.pop("RAY_ADDRESS", None)
        return env


def _ray_bin() -> str:
    path = Path(sys.executable).with_name("ray")
    if not path.exists():
        raise RuntimeError(f"ray is not installed beside {sys.executable}")
    return str(path)


def _wait_for(condition: object, what: str, log: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not start in 90 s: {log.read_text(errors='replace')[-2000:]}")


@contextmanager
def ray_cluster(cpus_per_node: int = 2) -> Iterator[RayCluster]:
    """Start the two nodes; yield; end them (see the module docstring)."""
    # short: Ray's unix socket paths under it must stay under 108 bytes
    temp_dir = Path(tempfile.mkdtemp(prefix="oag-ray-", dir="/tmp"))
    ray = _ray_bin()
    common = ["--block", "--num-cpus", str(cpus_per_node), "--disable-usage-stats"]
    env = {**os.environ, **RAY_ENV}
    env.pop("RAY_ADDRESS", None)
    head_log = temp_dir / "head.log"
    node_log = temp_dir / "node.log"
    cluster = RayCluster(address="", temp_dir=temp_dir)
    watched: dict[int, psutil.Process] = {}
    try:
        with head_log.open("wb") as out:
            head = subprocess.Popen(
                [ray, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", "0",
                 "--temp-dir", str(temp_dir), "--include-dashboard", "false", *common],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"},
            )  # fmt: skip
        cluster.processes.append(head)
        current = temp_dir / "ray_current_cluster"
        _wait_for(
            lambda: current.exists() and current.read_text().strip()
            and b"Ray runtime started" in head_log.read_bytes(),
            "the Ray head", head_log, head,
        )  # fmt: skip
        port = current.read_text().strip().rsplit(":", 1)[1]
        cluster.address = f"[::ffff:127.0.0.1]:{port}"
        with node_log.open("wb") as out:
            node = subprocess.Popen(
                [ray, "start", "--address", cluster.address, *common],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            )  # fmt: skip
        cluster.processes.append(node)
        _wait_for(
            lambda: b"Ray runtime started" in node_log.read_bytes(), "the second node",
            node_log, node,
        )  # fmt: skip
        for process in cluster.processes:
            for child in psutil.Process(process.pid).children(recursive=True):
                watched[child.pid] = child
        yield cluster
    finally:
        # the second node first: a head that goes first leaves it waiting for the GCS
        for process in reversed(cluster.processes):
            for child in _children(process):
                watched[child.pid] = child
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        _, alive = psutil.wait_procs(list(watched.values()), timeout=10)
        for leftover in alive:
            with suppress(psutil.NoSuchProcess):
                leftover.kill()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _children(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    try:
        return psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
