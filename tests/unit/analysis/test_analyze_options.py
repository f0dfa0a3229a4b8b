"""``analyze --metric-percentiles --trace-url --waterfalls``: the report shows what was asked,
and a bad value is one line and exit 2 before anything is read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from open_autoglm.cli import main

FIXTURE = Path(__file__).parents[2] / "fixtures" / "report_run"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    for name in ("results.json", "requests.jsonl", "run.json", "server_metrics.jsonl"):
        shutil.copy(FIXTURE / name, tmp_path / name)
    return tmp_path


def test_the_chosen_percentiles_and_trace_links_reach_the_report(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "http://127.0.0.1:16686/trace/{trace_id}"
    args = ["analyze", str(run_dir), "--metric-percentiles", "50,99.9", "--trace-url", url]
    assert main(args) == 0
    capsys.readouterr()
    report = json.loads((run_dir / "report.json").read_text())
    assert report["percentiles"] == [50.0, 99.9]
    assert report["trace_url"] == url
    assert set(report["summary"][0]["itl_ms"]["percentiles"]) == {"p50", "p99.9"}
    html = (run_dir / "report.html").read_text()
    assert "<th>ITL</th><th>mean</th><th>p50</th><th>p99.9</th>" in html


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [("--metric-percentiles", "50,ninety", "numbers separated by commas"),
     ("--metric-percentiles", "0", "(0, 100]"),
     ("--trace-url", "http://grafana/explore", "{trace_id}"),
     ("--waterfalls", "-1", "0 or more")],
)  # fmt: skip
def test_a_bad_report_option_is_one_line_and_exit_2(
    run_dir: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, needle: str
) -> None:
    assert main(["analyze", str(run_dir), option, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith("open-autoglm: error: ")
    assert needle in err
    assert err.count("\n") == 1
    assert not (run_dir / "report.json").exists()
