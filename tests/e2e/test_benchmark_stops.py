"""A managed run (``benchmark --backend sim``) stopped or broken as users and CI do it: a signal
to the run, ``kill -9`` of the run, ``kill -9`` of one of its children. Real processes on
127.0.0.1; each test checks that no child is left behind and no finished request is lost."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from open_autoglm.testing import ServerProcess, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.name != "posix", reason="signals and process groups: POSIX"),
]

CLI = [sys.executable, "-m", "open_autoglm", "benchmark", "--backend", "sim",
       "--backend-option", "cost=zero", "--concurrency", "4", "--requests", "1000000",
       "--input-len", "16", "--output-len", "256", "--ignore-eos", "--quiet",
       "--run-dir", "run"]  # fmt: skip


@dataclass
class Run:
    proc: subprocess.Popen[str]
    folder: Path
    children: dict[str, int]  # "server" / "collector" -> pid

    @property
    def run_dir(self) -> Path:
        return self.folder / "run"

    def records(self) -> list[dict[str, Any]]:
        path = self.run_dir / "requests.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def output(self) -> tuple[str, str]:
        return (self.folder / "stdout").read_text(), (self.folder / "stderr").read_text()


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _recorded(folder: Path) -> int:
    path = folder / "run" / "requests.jsonl"
    return len(path.read_bytes().splitlines()) if path.exists() else 0


@contextmanager
def managed_run(folder: Path, *, records: int = 8) -> Iterator[Run]:
    """The run, once it has recorded ``records`` requests; killed (with its children) after."""
    with (folder / "stdout").open("w") as out, (folder / "stderr").open("w") as err:
        proc = subprocess.Popen(CLI, cwd=folder, stdout=out, stderr=err, text=True)
    children: dict[str, int] = {}
    try:
        wait_for(
            f"{records} records",
            lambda: proc.poll() is not None or _recorded(folder) >= records,
            timeout_s=120,
            interval_s=0.05,
        )
        assert proc.poll() is None, (folder / "stderr").read_text()
        for child in psutil.Process(proc.pid).children():
            cmd = " ".join(child.cmdline())
            children["server" if " serve " in cmd else "collector"] = child.pid
        assert set(children) == {"server", "collector"}, children
        yield Run(proc, folder, children)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(60)
        for pid in children.values():
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)


def _no_record_lost(run: Run) -> dict[str, Any]:
    """Every record on disk is counted in results.json (cancelled ones too); the results."""
    results = json.loads((run.run_dir / "results.json").read_text())
    records = run.records()
    (level,) = results["levels"]
    assert level["requests"] == len(records)
    assert level["succeeded"] == sum(1 for r in records if r["status"] == "ok")
    assert level["cancelled"] == sum(1 for r in records if r["status"] == "cancelled")
    return results


@pytest.mark.parametrize(
    ("sig", "status"),
    [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)],
    ids=["SIGTERM", "SIGINT", "SIGHUP"],
)
def test_a_signal_stops_the_children_and_writes_results_and_report(
    tmp_path: Path, sig: signal.Signals, status: int
) -> None:
    with managed_run(tmp_path) as run:
        run.proc.send_signal(sig)
        code = run.proc.wait(120)
        children_left = [pid for pid in run.children.values() if not _gone(pid)]
    stdout, stderr = run.output()
    assert code == status, stderr
    assert children_left == []
    assert stderr.strip().splitlines()[-1].startswith(f"open-autoglm: stopped by {sig.name}")
    assert "Traceback" not in stderr
    results = _no_record_lost(run)
    assert results["interrupted"] is True
    assert results["stop_reason"] == f"{sig.name} received"
    assert results["levels"][0]["cancelled"] > 0  # the requests in flight, as cancelled
    report = json.loads((run.run_dir / "report.json").read_text())
    assert any(f"stopped early: {sig.name} received" in note for note in report["notes"])
    assert (run.run_dir / "report.html").exists()
    assert "level 0" in stdout
    assert not list(run.run_dir.glob(".*ready*"))  # the server took its ready file away


#: How soon the children of a killed run stop: SIGTERM from their parent watch, then the
#: span export's bound at exit (the collector is gone too), on a busy machine; 28 s before.
ORPHAN_STOP_S = 8.0


def test_kill_9_of_the_run_leaves_no_child_behind(tmp_path: Path) -> None:
    with managed_run(tmp_path) as run:
        run.proc.kill()
        run.proc.wait(30)
        for name, pid in run.children.items():
            wait_for(
                f"the orphaned {name} to stop",
                lambda pid=pid: _gone(pid),
                timeout_s=ORPHAN_STOP_S,
                interval_s=0.05,
            )
    assert "is gone; stopping" in (run.run_dir / "server.log").read_text()
    assert "is gone; stopping" in (run.run_dir / "collector.log").read_text()


def _stop_twice(proc: subprocess.Popen[str], run_dir: Path, when: str) -> int:
    """SIGINT, then two more: at once (0.1 s apart: they land while the load unwinds) or once
    the results are written (while the children stop and the report is written); the exit status."""
    proc.send_signal(signal.SIGINT)
    if when == "after-results":
        wait_for(
            "the results",
            lambda: proc.poll() is not None or (run_dir / "results.json").exists(),
            timeout_s=60,
            interval_s=0.005,
        )
    for _ in range(2):  # 0.1 s apart, as a user's Ctrl-C (at once, the kernel merges them)
        with contextlib.suppress(subprocess.TimeoutExpired):
            return proc.wait(0.1)
        proc.send_signal(signal.SIGINT)
    return proc.wait(120)


def _stopped_whole(run_dir: Path, stderr: str, *, report: bool, said: bool = True) -> None:
    """The stop finished despite the later signals: said so (``said``), results and records
    complete, the last line counts what finished (never 'before any request was sent')."""
    assert ("the stop is in progress" in stderr) is said, stderr
    assert "Traceback" not in stderr
    assert "before any request was sent" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("open-autoglm: stopped by SIGINT: "), stderr
    assert "requests finished" in last
    results = json.loads((run_dir / "results.json").read_text())
    records = [json.loads(line) for line in (run_dir / "requests.jsonl").read_text().splitlines()]
    assert sum(level["requests"] for level in results["levels"]) == len(records) > 0
    assert results["stop_reason"] == "SIGINT received"
    assert (run_dir / "report.json").exists() is report
    assert (run_dir / "report.html").exists() is report


@pytest.mark.parametrize("when", ["at-once", "after-results"])
def test_more_signals_during_the_stop_do_not_cut_it_short(tmp_path: Path, when: str) -> None:
    with managed_run(tmp_path) as run:
        code = _stop_twice(run.proc, run.run_dir, when)
        children_left = [pid for pid in run.children.values() if not _gone(pid)]
    stdout, stderr = run.output()
    assert code == 130, stderr
    assert children_left == []
    _stopped_whole(run.run_dir, stderr, report=True)
    _no_record_lost(run)
    assert "level 0" in stdout


@pytest.mark.parametrize("collect_spans", [False, True], ids=["url", "url-collect-spans"])
@pytest.mark.parametrize("when", ["at-once", "after-results"])
def test_more_signals_during_the_stop_of_a_url_run(
    tmp_path: Path, zero_cost_server: ServerProcess, collect_spans: bool, when: str
) -> None:
    command = [*CLI[:4], "--url", zero_cost_server.url, *CLI[8:]]  # no --backend sim, cost
    if collect_spans:
        command += ["--collect-spans", "--collector-grpc-port", "0",
                    "--collector-http-port", "0", "--spans-wait", "0"]  # fmt: skip
    with (tmp_path / "stdout").open("w") as out, (tmp_path / "stderr").open("w") as err:
        proc = subprocess.Popen(command, cwd=tmp_path, stdout=out, stderr=err, text=True)
    try:
        wait_for(
            "8 records",
            lambda: proc.poll() is not None or _recorded(tmp_path) >= 8,
            timeout_s=120,
            interval_s=0.05,
        )
        assert proc.poll() is None, (tmp_path / "stderr").read_text()
        code = _stop_twice(proc, tmp_path / "run", when)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(60)
    stderr = (tmp_path / "stderr").read_text()
    if collect_spans:  # the collector's stop and the report take a second or two
        assert code == 130, stderr
        _stopped_whole(tmp_path / "run", stderr, report=True)
        return
    # a plain --url run writes its results within a few ms of the first signal: a later one
    # may land in that stop (said), or once everything is written and the process is exiting,
    # where it is ignored: exit 130 either way, never a death by the late signal
    assert code == 130, stderr
    _stopped_whole(tmp_path / "run", stderr, report=False, said="in progress" in stderr)


@pytest.mark.parametrize("victim", ["server", "collector"])
def test_a_child_that_dies_mid_run_stops_the_run_and_is_named(tmp_path: Path, victim: str) -> None:
    with managed_run(tmp_path) as run:
        os.kill(run.children[victim], signal.SIGKILL)
        code = run.proc.wait(120)
        children_left = [pid for pid in run.children.values() if not _gone(pid)]
    stdout, stderr = run.output()
    assert code == 2, stderr
    assert children_left == []
    pid = run.children[victim]
    said = f"the {victim} (pid {pid}) was killed by SIGKILL (exit status -9) mid-run"
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"open-autoglm: error: {said}")
    results = _no_record_lost(run)
    assert results["stop_reason"] == said
    # it stopped sending at once: no stream of requests to a dead port. The port closes a
    # little before the kernel reports the death, so a few refusals may come in between
    # (more on a loaded machine); they all fall within a short window, never minutes.
    records = run.records()
    refused = [r["sent_unix_ns"] for r in records if r["error_type"] == "ConnectError"]
    if refused:
        window_s = (max(r["sent_unix_ns"] for r in records) - min(refused)) / 1e9
        assert window_s < 2.0, (len(refused), window_s)
    if victim == "server":
        report = json.loads((run.run_dir / "report.json").read_text())
        assert any(said in note for note in report["notes"])
        assert not any("sampling" in note for note in report["notes"])
    assert "level 0" in stdout  # what finished is summarised
