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
