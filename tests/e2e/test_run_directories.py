"""Run directories as a user names them: a name with glob characters is a name, not a pattern.

``runs/run[1]`` beside ``runs/run1``: the report, ``analyze`` and ``check`` of ``run[1]`` read
only ``run[1]``'s files (DuckDB would expand ``[1]`` to ``1`` if handed the path as a
pattern)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "open_autoglm"]


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *argv], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def test_a_run_directory_named_like_a_pattern_reads_only_its_own_files(tmp_path: Path) -> None:
    for run_dir, requests in (("runs/run1", "30"), ("runs/run[1]", "20")):
        done = _run("benchmark", "--backend", "sim", "--backend-option", "cost=zero",
                    "--concurrency", "2", "--requests", requests, "--output-len", "8",
                    "--run-dir", run_dir, "--quiet", cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stderr
    own = tmp_path / "runs" / "run[1]"
    records = (own / "requests.jsonl").read_text().splitlines()
    assert len(records) == 20
    report = json.loads((own / "report.json").read_text())
    assert report["stages"]["requests"] == 20
    assert report["stages"]["with_server_spans"] == 20
    again = _run("analyze", "runs/run[1]", "--output", "again.json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "again.json").read_text())["stages"]["requests"] == 20
    gate = _run("check", "runs/run[1]/report.json", "--slo", "p95_e2e<=60s", cwd=tmp_path)
    assert gate.returncode == 0, gate.stdout + gate.stderr  # 20 records for 20 results
