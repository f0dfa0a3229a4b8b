"""A measured run loses no span: at a saturating load every request is joined to its server
span, and the server's export counters say nothing was dropped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_every_request_of_a_saturating_run_is_joined(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "open_autoglm", "benchmark", "--backend", "sim",
         "--backend-option", "cost=zero", "--concurrency", "64", "--requests", "3000",
         "--output-len", "4", "--quiet", "--run-dir", str(run_dir)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((run_dir / "report.json").read_text())
    stages = report["stages"]
    assert stages["requests"] == 3000
    assert stages["with_server_spans"] == stages["requests"]
    export = json.loads((run_dir / "span_export.json").read_text())  # the server's own count
    assert export["spans_dropped"] == 0
    assert export["spans_exported"] >= 5 * 3000  # SERVER + stages of every request
    assert not [note for note in report["notes"] if "dropped" in note]
    server_log = (run_dir / "server.log").read_text()
    assert "spans were dropped" not in server_log
    assert "Queue full" not in server_log
