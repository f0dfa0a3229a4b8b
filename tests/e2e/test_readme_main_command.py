"""The README's main command, exactly: SmolLM2-135M on ONNX Runtime, managed run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from open_autoglm.collector import SpanStore

COMMAND = ["benchmark", "--backend", "onnxruntime", "--model", "smollm2-135m",
           "--concurrency", "16", "--output", "report.json"]  # fmt: skip


def test_readme_command_is_the_makefile_demo() -> None:
    makefile = (Path(__file__).parents[2] / "Makefile").read_text()
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert "open-autoglm " + " ".join(COMMAND) in makefile
    assert "open-autoglm " + " ".join(COMMAND) in readme


@pytest.mark.slow
def test_main_command_on_the_real_model(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "open_autoglm", *COMMAND, "--quiet"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["run"]["backend"] == "onnxruntime"
    assert report["run"]["simulated"] is False
    assert report["run"]["runtime"]["execution_provider"] == "CPUExecutionProvider"
    (level,) = report["load"]["levels"]
    assert level["succeeded"] == 100
    assert level["failed"] == 0
    assert report["stages"]["with_server_spans"] == 100
    assert report["stages"]["stages_ms"]["prefill"]["count"] == 100
    assert report["resources"]["server_rss_peak_bytes"] > 100 * 2**20
    html = (tmp_path / "report.html").read_text()
    assert len(html) > 10_000
    assert "CPUExecutionProvider" in html
    (spans_db,) = tmp_path.glob("runs/*/spans.duckdb")
    with SpanStore(spans_db) as store:
        (resources,) = store.connection.execute(
            "SELECT list(DISTINCT resource_attributes->>'autoglm.backend.execution_provider') "
            "FROM spans WHERE service_name = 'open-autoglm-server'"
        ).fetchone()
    assert resources == ["CPUExecutionProvider"]
