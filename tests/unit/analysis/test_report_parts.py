"""Pieces of the report: metric samples, resource summary, charts, HTML escaping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from open_autoglm.analysis import (
    Report,
    build_report,
    render_html,
    summarize_samples,
)
from open_autoglm.analysis._metric_samples import measured_windows
from open_autoglm.analysis._svg import _nice_max, stacked_bars, waterfall
from open_autoglm.analysis._svg_line import Line, histogram_chart, line_chart
from open_autoglm.run import parse_sample
from open_autoglm.telemetry import names as n

GOLDEN_REPORT = Path(__file__).parents[2] / "fixtures" / "report_run" / "golden_report.json"

SCRAPE = f"""# TYPE {n.METRIC_PROCESS_RSS} gauge
{n.METRIC_PROCESS_RSS} 1.5e+08
# TYPE {n.METRIC_QUEUE_DEPTH} gauge
{n.METRIC_QUEUE_DEPTH}{{{n.LABEL_PROVIDER}="sim",{n.LABEL_MODEL}="m"}} 3.0
# TYPE {n.METRIC_GPU_MEMORY_USED} gauge
{n.METRIC_GPU_MEMORY_USED}{{gpu="0"}} 100.0
{n.METRIC_GPU_MEMORY_USED}{{gpu="1"}} 50.0
# TYPE {n.METRIC_GPU_UTILIZATION} gauge
{n.METRIC_GPU_UTILIZATION}{{gpu="0"}} 0.5
{n.METRIC_GPU_UTILIZATION}{{gpu="1"}} 1.0
"""


def test_parse_sample_sums_memory_and_averages_utilisation() -> None:
    sample = parse_sample(SCRAPE)
    assert sample == {
        "rss_bytes": 1.5e8,
        "queue_depth": 3.0,
        "gpu_memory_used_bytes": 150.0,
        "gpu_utilization": 0.75,
    }


def test_summary_takes_peaks(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    rows = [{"rss_bytes": 10, "batch_size": 2}, {"rss_bytes": 30, "peak_rss_bytes": 40,
            "load_peak_rss_bytes": 90, "batch_size": 6}]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = summarize_samples(path)
    assert summary.samples == 2
    # without a memory watch: the largest scrape, never the process's lifetime mark
    assert summary.server_rss_peak_bytes == 30
    assert summary.server_rss_load_peak_bytes == 90
    assert summary.memory_peak_source == "/metrics scrapes every 0.5 s"
    assert summary.batch_size_max == 6
    assert summary.batch_size_mean == 4
    assert summary.gpu_memory_peak_bytes is None
    assert summarize_samples(tmp_path / "absent.jsonl").samples == 0


def test_serving_peak_is_taken_inside_the_measured_windows(tmp_path: Path) -> None:
    memory = tmp_path / "server_memory.jsonl"
    rows = [
        {"phase": "load", "start_unix_ns": 0, "end_unix_ns": 100, "rss_peak_bytes": 900,
         "gpu_memory_peak_bytes": 70, "method": "sampled"},
        {"phase": "serve", "start_unix_ns": 100, "end_unix_ns": 200, "rss_peak_bytes": 500,
         "method": "kernel"},  # warm-up
        {"phase": "serve", "start_unix_ns": 200, "end_unix_ns": 300, "rss_peak_bytes": 120,
         "gpu_memory_peak_bytes": 50, "method": "kernel"},
        {"phase": "serve", "start_unix_ns": 300, "end_unix_ns": 400, "rss_peak_bytes": 130,
         "gpu_memory_peak_bytes": 40, "method": "kernel"},
        {"phase": "serve", "start_unix_ns": 400, "end_unix_ns": 500, "rss_peak_bytes": 800,
         "method": "kernel"},  # after the last measured completion
    ]  # fmt: skip
    memory.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = summarize_samples(tmp_path / "none.jsonl", memory, [(200, 350)])
    assert summary.server_rss_peak_bytes == 130
    assert summary.gpu_memory_peak_bytes == 50
    assert summary.server_rss_load_peak_bytes == 900
    assert summary.gpu_memory_load_peak_bytes == 70
    assert summary.memory_peak_source is not None
    assert summary.memory_peak_source.startswith("kernel high-water mark")


def test_measured_windows_skip_warmup(tmp_path: Path) -> None:
    records = tmp_path / "requests.jsonl"
    rows = [
        {"level": 0, "phase": "warmup", "sent_unix_ns": 10, "sent_s": 0.0, "done_s": 1.0},
        {"level": 0, "phase": "measure", "sent_unix_ns": 2_000, "sent_s": 1.0, "done_s": 1.5},
        {"level": 1, "phase": "measure", "sent_unix_ns": 9_000, "sent_s": 0.0, "done_s": 1e-6},
    ]  # fmt: skip
    records.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert measured_windows(records) == [(2_000, 2_000 + 500_000_000), (9_000, 10_000)]
    assert measured_windows(tmp_path / "absent.jsonl") is None


@pytest.mark.parametrize(
    ("value", "expected"), [(0.7, 1.0), (3, 5), (12, 20), (230, 250), (1000, 1000), (0, 1.0)]
)
def test_nice_axis_maximum(value: float, expected: float) -> None:
    assert _nice_max(value) == pytest.approx(expected)


def test_charts_escape_text_and_handle_empty_data() -> None:
    hostile = "<script>alert(1)</script>"
    assert "<script>" not in line_chart([Line(hostile, [(1.0, 2.0)])], hostile, hostile, hostile)
    assert "<script>" not in histogram_chart([0.0, 1.0, 2.0], {hostile: [1, 2]}, hostile, "t")
    assert "<script>" not in stacked_bars({hostile: {hostile: 1.0}}, "ms", "t")
    assert "<script>" not in waterfall([(hostile, "SERVER", 0.0, 1.0, 0)], "t")
    assert line_chart([], "ms", "y", "t") == "<p>No data.</p>"
    assert "No spans" in waterfall([], "t")


def test_html_escapes_model_names_and_errors() -> None:
    hostile = "<img src=x onerror=alert(1)>"
    doc = json.loads(GOLDEN_REPORT.read_text(encoding="utf-8"))
    doc["run"]["model"] = hostile
    doc["load"]["endpoint"]["url"] = hostile
    doc["load"]["levels"][0]["label"] = hostile
    doc["load"]["levels"][0]["errors"] = {hostile: 1}
    doc["notes"] = [hostile]
    report = Report.from_json(doc)
    html = render_html(report)
    assert "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "simulated backend" in html


def test_run_file_written_by_run_info_reads_back_into_the_report(tmp_path: Path) -> None:
    golden = Report.from_json(json.loads(GOLDEN_REPORT.read_text(encoding="utf-8")))
    assert golden.run is not None
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    golden.run.write(run_dir / "run.json")
    golden.load.write(run_dir / "results.json")
    report = build_report(run_dir)
    assert report.run == golden.run
    assert report.to_json()["run"] == json.loads((run_dir / "run.json").read_text())
    assert report.load == golden.load
    assert report.stages is None  # no records, no spans: said in the notes
    assert any("No span store" in note for note in report.notes)
