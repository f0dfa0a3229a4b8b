"""The command line as a user meets it: ``--output -`` writes JSON to standard output, and a
backend whose engine is not installed ends in one line naming the extra."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from open_autoglm.testing import ServerProcess

#: The CLI with ``onnxruntime`` hidden, as on the base install (no ``[onnx]`` extra).
_WITHOUT_ORT = (
    "import sys; sys.modules['onnxruntime'] = None; from open_autoglm.cli import main; "
    "raise SystemExit(main(sys.argv[1:]))"
)


def _cli(*args: str, cwd: Path, code: str | None = None) -> subprocess.CompletedProcess[str]:
    head = [sys.executable, "-c", code] if code else [sys.executable, "-m", "open_autoglm"]
    return subprocess.run([*head, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          check=False)  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [
        ("serve", "--backend", "onnxruntime", "--port", "0"),
        ("benchmark", "--backend", "onnxruntime", "--requests", "1", "--quiet"),
    ],
)
def test_a_missing_engine_is_one_line_naming_the_extra(tmp_path: Path, args: tuple[str]) -> None:
    done = _cli(*args, cwd=tmp_path, code=_WITHOUT_ORT)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "open-autoglm: error: the onnxruntime backend needs onnxruntime, which is not "
        "installed: pip install 'open-autoglm[onnx]'"
    ], done.stderr
    assert not list(tmp_path.iterdir())  # nothing started, nothing written


def test_output_dash_writes_the_results_json_to_stdout(
    sim_server: ServerProcess, tmp_path: Path
) -> None:
    done = _cli("benchmark", "--url", sim_server.url, "--requests", "4", "--output-len", "4",
                "--output", "-", "--quiet", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)  # nothing but the document
    assert results["levels"][0]["succeeded"] == 4
    assert "level 0" in done.stderr  # the human summary went to stderr
    assert not (tmp_path / "-").exists()
    assert len((tmp_path / "requests.jsonl").read_text().splitlines()) == 4


@pytest.mark.slow
def test_output_dash_in_a_managed_run_writes_the_report(tmp_path: Path) -> None:
    done = _cli("benchmark", "--backend", "sim", "--backend-option", "cost=zero",
                "--requests", "4", "--output-len", "4", "--run-dir", str(tmp_path / "run"),
                "--output", "-", "--quiet", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["load"]["levels"][0]["succeeded"] == 4
    assert (tmp_path / "run" / "report.json").exists()
    assert not (tmp_path / "-").exists()
    again = _cli("analyze", str(tmp_path / "run"), "--output", "-", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["load"] == report["load"]
    assert "html:" in again.stderr
