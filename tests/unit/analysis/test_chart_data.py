"""The curves' data of the fixture run add up to what the records say: requests in flight
integrate to the time spent in requests, tokens per second to the tokens, the ITL histogram
holds every gap, and the server's gauges come from its samples."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from open_autoglm.analysis import RunDirectory
from open_autoglm.analysis._chart_data import MAX_POSITIONS, chart_data

FIXTURE = Path(__file__).parents[2] / "fixtures" / "report_run"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("charts")
    for name in ("results.json", "requests.jsonl", "server_metrics.jsonl"):
        shutil.copy(FIXTURE / name, path / name)
    return path


def _records(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "requests.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("phase", "measure") == "measure"]


def test_series_integrate_to_the_records(run_dir: Path) -> None:
    records = _records(run_dir)
    with RunDirectory(run_dir) as run:
        charts = chart_data(run, {0: "c=1"})
    assert charts is not None
    series = {s.name: s for s in charts.client}
    width = series["requests in flight"].x[1] - series["requests in flight"].x[0]
    busy = sum(float(r["done_s"]) - float(r["sent_s"]) for r in records)
    assert sum(series["requests in flight"].y) * width == pytest.approx(busy, rel=0.01)
    ok = [r for r in records if r["status"] == "ok"]
    tokens = sum(int(r["output_tokens"]) for r in ok)
    assert sum(series["output tokens/s"].y) * width == pytest.approx(tokens, rel=0.01)
    assert sum(series["completed requests/s"].y) * width == pytest.approx(len(ok), rel=0.01)
    assert [m.label for m in charts.levels][:2] == ["c=1", "1"]
    assert charts.levels[0].t_s == 0.0


def test_itl_histogram_and_positions_hold_every_gap(run_dir: Path) -> None:
    ok = [r for r in _records(run_dir) if r["status"] == "ok"]
    gaps = [np.diff(r["chunk_offsets_s"]) for r in ok]
    with RunDirectory(run_dir) as run:
        charts = chart_data(run, {})
    assert charts is not None
    assert charts.itl_ms is not None
    drawn = sum(sum(c) for c in charts.itl_ms.counts.values())
    assert drawn + sum(charts.itl_ms.above.values()) == sum(g.size for g in gaps)
    longest = max(g.size for g in gaps)
    for series in charts.itl_by_position_ms:
        assert series.x[0] == 1.0
        assert len(series.x) <= MAX_POSITIONS
        assert max(series.x) <= longest
    first = [g[0] * 1e3 for r, g in zip(ok, gaps, strict=True) if g.size and r["level"] == 0]
    assert charts.itl_by_position_ms[0].y[0] == pytest.approx(np.median(first), abs=1e-3)


def test_length_histograms_count_every_successful_request(run_dir: Path) -> None:
    ok = [r for r in _records(run_dir) if r["status"] == "ok"]
    with RunDirectory(run_dir) as run:
        charts = chart_data(run, {0: "c=1"})
    assert charts is not None
    for hist, key in ((charts.input_tokens, "input_tokens"), (charts.output_tokens,
                                                              "output_tokens")):  # fmt: skip
        assert hist is not None
        values = [r[key] for r in ok if r[key] is not None]
        assert list(hist.counts) == ["all levels"]
        drawn = sum(hist.counts["all levels"]) + hist.above.get("all levels", 0)
        assert drawn == len(values)
        if hist.edges[0] != hist.edges[-1]:  # whole-number bins around the values
            assert hist.edges[0] == min(values) - 0.5


def test_server_gauges_come_from_the_samples(run_dir: Path) -> None:
    with RunDirectory(run_dir) as run:
        charts = chart_data(run, {})
    assert charts is not None
    names = {s.name for s in charts.server}
    assert {"queue depth", "running batch size", "server RSS, MiB"} <= names
    lines = (run_dir / "server_metrics.jsonl").read_text().splitlines()
    samples = [json.loads(line) for line in lines]
    queue = next(s for s in charts.server if s.name == "queue depth")
    assert max(queue.y) <= max(s.get("queue_depth", 0) for s in samples)


def test_no_records_no_charts(tmp_path: Path) -> None:
    shutil.copy(FIXTURE / "results.json", tmp_path / "results.json")
    with RunDirectory(tmp_path) as run:
        assert chart_data(run, {}) is None
