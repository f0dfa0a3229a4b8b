"""``benchmark --slo ... --fail-on-slo``: the run's exit status follows the objectives."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "open_autoglm", "benchmark", "--backend", "sim",
       "--backend-option", "cost=zero", "--concurrency", "4", "--requests", "20",
       "--output-len", "8", "--quiet"]  # fmt: skip


@pytest.mark.parametrize(
    ("slo", "status", "verdict"),
    [("ttft<=10s,p95_e2e<=1us", 1, "FAIL"), ("p95_e2e<=60s,error_rate<=1%", 0, "PASS")],
)
def test_fail_on_slo(tmp_path: Path, slo: str, status: int, verdict: str) -> None:
    proc = subprocess.run(
        [*CLI, "--run-dir", str(tmp_path / "run"), "--slo", slo, "--fail-on-slo"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == status, proc.stdout + proc.stderr
    assert f"gate: {verdict}" in proc.stdout
    assert (tmp_path / "run" / "report.json").exists()  # the report is kept either way


def test_fail_on_slo_without_run_level_objectives(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*CLI, "--run-dir", str(tmp_path / "run"), "--slo", "ttft<=1s", "--fail-on-slo"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--fail-on-slo needs run-level objectives" in proc.stderr
    assert not (tmp_path / "run").exists()  # refused before anything ran


def test_check_finds_the_records_of_reports_written_outside_their_run_dirs(
    tmp_path: Path,
) -> None:
    """``--output elsewhere/report.json``: the records stay in the run directory, and ``check
    NEW --baseline OLD`` still compares request by request (it found none, and could not
    judge, when it looked only beside the reports)."""
    out = tmp_path / "reports"
    for name in ("old", "new"):
        proc = subprocess.run(
            [*CLI, "--run-dir", str(tmp_path / name), "--output", str(out / f"{name}.json")],
            capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    assert not (out / "requests.jsonl").exists()
    check = subprocess.run(
        [sys.executable, "-m", "open_autoglm", "check", str(out / "new.json"),
         "--baseline", str(out / "old.json"), "--slo", "p95_e2e<=60s"],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert "CANNOT JUDGE" not in check.stdout, check.stdout
    assert check.returncode in (0, 1), check.stdout + check.stderr
    assert "p95_e2e" in check.stdout
