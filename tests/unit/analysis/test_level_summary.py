"""The results summary per level: percentiles the user chose, computed from the records as
numpy computes them, and the load generator's statistics when there are no records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from open_autoglm.analysis import PercentileError, RunDirectory, parse_percentiles
from open_autoglm.analysis._level_summary import summarize_levels
from open_autoglm.analysis._report import _RESULTS
from open_autoglm.loadgen import BenchmarkResults

FIXTURE = Path(__file__).parents[2] / "fixtures" / "report_run"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("50,90,99", (50.0, 90.0, 99.0)), ("99", (99.0,)), (" p99.9, 50,50 ", (50.0, 99.9)),
     ("100", (100.0,))],
)  # fmt: skip
def test_percentiles_parse_like_vllm_bench_serve(text: str, expected: tuple[float, ...]) -> None:
    assert parse_percentiles(text) == expected


@pytest.mark.parametrize(("text", "needle"), [("", "numbers"), ("50,x", "numbers"),
                                              ("0", "(0, 100]"), ("101", "(0, 100]")])  # fmt: skip
def test_bad_percentiles_are_refused_with_the_reason(text: str, needle: str) -> None:
    with pytest.raises(PercentileError, match=needle.replace("(", r"\(").replace("]", r"\]")):
        parse_percentiles(text)


def _run(tmp_path: Path) -> Path:
    for name in ("results.json", "requests.jsonl"):
        shutil.copy(FIXTURE / name, tmp_path / name)
    return tmp_path


def _results(path: Path) -> BenchmarkResults:
    return _RESULTS.validate_python(json.loads((path / "results.json").read_text()))


def test_summary_percentiles_are_numpy_percentiles_of_the_records(tmp_path: Path) -> None:
    run_dir = _run(tmp_path)
    records = [json.loads(line) for line in (run_dir / "requests.jsonl").read_text().splitlines()]
    with RunDirectory(run_dir) as run:
        summary = summarize_levels(_results(run_dir).levels, run, (50.0, 75.0, 99.9))
    assert [s.level for s in summary] == [0, 1, 2, 3, 4]
    for s in summary:
        ok = [r for r in records if r["level"] == s.level and r["status"] == "ok"
              and r["phase"] == "measure"]  # fmt: skip
        ttft = np.array([r["ttft_s"] for r in ok]) * 1e3
        gaps = np.concatenate([np.diff(r["chunk_offsets_s"]) for r in ok]) * 1e3
        assert s.ttft_ms.count == len(ok)
        assert s.ttft_ms.at(75) == pytest.approx(np.percentile(ttft, 75), abs=1e-3)
        assert s.ttft_ms.mean == pytest.approx(ttft.mean(), abs=1e-3)
        assert s.itl_ms.count == gaps.size
        assert s.itl_ms.at(99.9) == pytest.approx(np.percentile(gaps, 99.9), abs=1e-3)
        assert set(s.e2e_ms.percentiles) == {"p50", "p75", "p99.9"}


def test_without_records_the_results_statistics_are_used(tmp_path: Path) -> None:
    run_dir = _run(tmp_path)
    (run_dir / "requests.jsonl").unlink()
    levels = _results(run_dir).levels
    summary = summarize_levels(levels, None, (50.0, 95.0, 99.5))
    assert summary[2].e2e_ms.at(50) == pytest.approx(levels[2].e2e_ms.median, abs=1e-3)
    assert summary[2].e2e_ms.at(95) == pytest.approx(levels[2].e2e_ms.p95, abs=1e-3)
    assert summary[2].e2e_ms.at(99.5) is None  # not kept by the load generator
    assert summary[2].request_throughput == pytest.approx(levels[2].request_throughput, abs=1e-3)
